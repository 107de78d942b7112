// ISO 9660 reader, enough to locate files: the primary volume descriptor,
// directory records (with multi-extent files), and Rock Ridge NM names
// (following SUSP CE continuation areas). Falls back to ISO 9660 names
// (";1" version stripped, lower-cased) when there is no Rock Ridge.

import { ByteSource, FileSource, preadFully, RangesSource, SliceableSource } from '../io/source';
import { fileError } from '../util/errors';

// ---- on-disk constants -------------------------------------------------
const SECTOR = 2048;
const VD_START = 16;
const VD_PRIMARY = 1;
const VD_TERMINATOR = 255;
const FLAG_DIRECTORY = 0x02;
const FLAG_MULTI_EXTENT = 0x80;
const NM_CONTINUE = 0x01;
const NM_CURRENT = 0x02;
const NM_PARENT = 0x04;
/** SUSP CE: signature, length, version, then block, offset and length (both-endian 32-bit each) */
const CE_LEN = 28;

export interface IsoEntry {
  name: string;
  isDir: boolean;
  size: number;
  extents: [number, number][]; // [byte offset, length]
}

interface DirRecord {
  len: number;
  lba: number;
  size: number;
  flags: number;
  isoName: string;
  su: Buffer; // system use area
}

export class IsoImage {
  private readonly dirCache = new Map<string, IsoEntry[]>();
  private suspSkip = 0;
  private rockRidge = false;

  private constructor(readonly src: ByteSource, readonly name: string, private readonly root: IsoEntry) {}

  static async open(src: ByteSource, name: string): Promise<IsoImage> {
    if (src.size < (VD_START + 2) * SECTOR) throw fileError(name, 'not an ISO 9660 image (too small)');
    let root: IsoEntry | undefined;
    for (let i = VD_START; i < VD_START + 64; i++) {
      if ((i + 1) * SECTOR > src.size) throw fileError(name, 'not an ISO 9660 image (truncated: no volume descriptor set terminator)');
      const vd = Buffer.alloc(SECTOR);
      await preadFully(src, vd, i * SECTOR, name);
      if (vd.toString('latin1', 1, 6) !== 'CD001') throw fileError(name, 'not an ISO 9660 image (no volume descriptor)');
      const type = vd[0];
      if (type === VD_TERMINATOR) break;
      if (type === VD_PRIMARY) {
        if (vd.readUInt16LE(128) !== SECTOR) throw fileError(name, `unsupported ISO logical block size ${vd.readUInt16LE(128)}`);
        const r = parseRecord(vd, 156);
        if (!r) throw fileError(name, 'ISO root directory record is damaged');
        root = { name: '', isDir: true, size: r.size, extents: [[r.lba * SECTOR, r.size]] };
      }
    }
    if (!root) throw fileError(name, 'not an ISO 9660 image (no primary volume descriptor)');
    const img = new IsoImage(src, name, root);
    await img.detectRockRidge();
    return img;
  }

  private async detectRockRidge(): Promise<void> {
    const [off] = this.root.extents[0];
    if (off + SECTOR > this.src.size) throw fileError(this.name, 'the ISO root directory lies beyond the end of the image (truncated ISO)');
    const sec = Buffer.alloc(SECTOR);
    await preadFully(this.src, sec, off, this.name);
    const dot = parseRecord(sec, 0);
    if (dot && dot.su.length >= 7 && dot.su.toString('latin1', 0, 2) === 'SP' && dot.su[4] === 0xbe && dot.su[5] === 0xef) {
      this.suspSkip = dot.su[6];
      this.rockRidge = true;
    }
  }

  async readdir(dir: IsoEntry): Promise<IsoEntry[]> {
    const key = dir.extents.map((e) => e[0]).join(',');
    const hit = this.dirCache.get(key);
    if (hit) return hit;
    // checked before the buffer is sized by the record's length field
    if (dir.extents[0][0] + dir.size > this.src.size) throw fileError(this.name, 'an ISO directory extends beyond the end of the image (truncated ISO)');
    const data = Buffer.alloc(dir.size);
    await preadFully(this.src, data, dir.extents[0][0], this.name);
    const out: IsoEntry[] = [];
    // a file of several extents (ECMA-119 9.1.6: every record but the last has the multi-extent flag) is
    // consecutive records with the same ISO 9660 name; its Rock Ridge name is taken from the first
    let pending: { entry: IsoEntry; isoName: string } | undefined;
    for (let sec = 0; sec < data.length; sec += SECTOR) {
      let o = sec;
      const end = Math.min(sec + SECTOR, data.length);
      while (o < end) {
        if (data[o] === 0) break; // rest of the sector is padding
        const r = parseRecord(data, o);
        if (!r) throw fileError(this.name, 'damaged ISO directory record');
        o += r.len;
        if (r.isoName === '\0' || r.isoName === '\x01') continue; // . and ..
        const ext: [number, number] = [r.lba * SECTOR, r.size];
        if (pending && pending.isoName === r.isoName) {
          pending.entry.extents.push(ext);
          pending.entry.size += r.size;
        } else {
          const name = this.rockRidge ? (await this.rrName(r)) ?? isoFallbackName(r.isoName) : isoFallbackName(r.isoName);
          pending = { entry: { name, isDir: (r.flags & FLAG_DIRECTORY) !== 0, size: r.size, extents: [ext] }, isoName: r.isoName };
          out.push(pending.entry);
        }
        if (!(r.flags & FLAG_MULTI_EXTENT)) pending = undefined;
      }
    }
    this.dirCache.set(key, out);
    return out;
  }

  private async rrName(r: DirRecord): Promise<string | undefined> {
    let area = r.su.subarray(this.suspSkip);
    let name = '';
    let found = false;
    for (let guard = 0; guard < 32 && area.length; guard++) {
      let next: Buffer | undefined;
      let o = 0;
      while (o + 4 <= area.length) {
        const sig = area.toString('latin1', o, o + 2);
        const len = area[o + 2];
        if (len < 4 || o + len > area.length) break;
        if (sig === 'NM') {
          const flags = area[o + 4];
          if (flags & (NM_CURRENT | NM_PARENT)) return undefined;
          name += area.toString('utf8', o + 5, o + len);
          found = true;
          if (!(flags & NM_CONTINUE)) return name;
        } else if (sig === 'CE') {
          if (len < CE_LEN) throw fileError(this.name, 'damaged Rock Ridge continuation entry (CE too short)');
          const lba = area.readUInt32LE(o + 4);
          const off = area.readUInt32LE(o + 12);
          const clen = area.readUInt32LE(o + 20);
          // a continuation area lies within one logical block (Linux refuses one that does not)
          if (off + clen > SECTOR || lba * SECTOR + off + clen > this.src.size) {
            throw fileError(this.name, 'damaged Rock Ridge continuation entry (CE area out of range)');
          }
          next = Buffer.alloc(clen);
          await preadFully(this.src, next, lba * SECTOR + off, this.name);
        } else if (sig === 'ST') {
          break;
        }
        o += len;
      }
      if (!next) break;
      area = next;
    }
    return found ? name : undefined;
  }

  async lookup(path: string): Promise<IsoEntry | undefined> {
    let cur = this.root;
    for (const part of path.split('/').filter(Boolean)) {
      if (!cur.isDir) return undefined;
      const kids = await this.readdir(cur);
      const next = kids.find((k) => k.name === part);
      if (!next) return undefined;
      cur = next;
    }
    return cur;
  }

  /** The bytes of a file as a source (following its extents). */
  open(entry: IsoEntry, label = entry.name): SliceableSource {
    label = printable(label); // names come from the image: one line in messages
    for (const [off, len] of entry.extents) {
      if (off + len > this.src.size) throw fileError(this.name, `${label} extends beyond the end of the image (truncated ISO)`);
    }
    const name = `${this.name}:${label}`;
    return this.src instanceof FileSource ? new FileSource(this.src.fd, name, entry.extents) : new RangesSource(this.src, name, entry.extents);
  }
}

function parseRecord(b: Buffer, o: number): DirRecord | undefined {
  const len = b[o];
  if (len < 34 || o + len > b.length) return undefined;
  const nameLen = b[o + 32];
  if (33 + nameLen > len) return undefined;
  const suStart = o + 33 + nameLen + (nameLen % 2 === 0 ? 1 : 0);
  return {
    len,
    lba: b.readUInt32LE(o + 2),
    size: b.readUInt32LE(o + 10),
    flags: b[o + 25],
    isoName: b.toString('latin1', o + 33, o + 33 + nameLen),
    su: b.subarray(Math.min(suStart, o + len), o + len),
  };
}

/** `s` with control characters escaped (\xNN), for error messages. */
function printable(s: string): string {
  return s.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

function isoFallbackName(n: string): string {
  let s = n.replace(/;\d+$/, '');
  if (s.endsWith('.')) s = s.slice(0, -1);
  return s.toLowerCase();
}

/** Does this source start like an ISO 9660 image? */
export async function looksLikeIso(src: ByteSource): Promise<boolean> {
  if (src.size < (VD_START + 1) * SECTOR) return false;
  const b = Buffer.alloc(6);
  await src.pread(b, VD_START * SECTOR);
  return b.toString('latin1', 1, 6) === 'CD001';
}

export const ISO_SECTOR = SECTOR;
