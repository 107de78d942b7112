// Minimal XML text helpers for the OVF writers (escaping only; documents
// are written as text so the bytes hashed are the bytes served).

export function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}
