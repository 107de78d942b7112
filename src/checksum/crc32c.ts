// CRC-32C (Castagnoli polynomial, reflected 0x82F63B78), as VHDX uses for
// its headers, region tables and log entries. Table-driven, a byte at a
// time: the structures it covers are at most 64 KiB.

const POLY = 0x82f63b78;

const TABLE: Uint32Array = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32C of `buf`, continuing from `prev` (0 for a fresh CRC). */
export function crc32c(buf: Uint8Array, prev = 0): number {
  let c = ~prev >>> 0;
  for (let i = 0; i < buf.length; i++) c = TABLE[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}
