// Google Compute Engine image: gce/<name>.tar.gz, a gzip'd GNU tar in the
// old GNU format (`tar --format=oldgnu -Sczf`) holding one member,
// disk.raw, the cloud family's bootable disk, stored sparse (type 'S'):
// the sparse map lists only the disk's non-zero regions and only their
// bytes are stored. The map's first 4 entries are in the header, the rest
// in extension blocks of 21 entries (isextended chains them); realsize is
// the disk size. Numbers too large for the octal fields (a disk over
// 8 GiB) use GNU's base-256 encoding. The regions follow the DiskImage's
// pieces, so the gzip body splices the pool blocks' own deflate and only
// the headers, the disk's metadata literals and short zero runs are new
// deflate.

import { Format, FormatContext } from './context';
import { familyDisk } from './disk/disk';
import { DiskImage, SECTOR } from './disk/diskimage';
import { PieceList } from './pieces';
import { Recipe } from '../recipe/recipe';

// ---- GNU tar, old GNU format (tar.h: struct oldgnu_header, struct sparse_header) ----
const BLOCKSIZE = 512;
const RECORD = 20 * BLOCKSIZE; // GNU tar's default blocking factor 20
const OLDGNU_MAGIC = 'ustar  \0'; // magic[6] "ustar " + version[2] " \0"
const GNUTYPE_SPARSE = 'S';
const SPARSES_IN_OLDGNU_HEADER = 4;
const SPARSES_IN_SPARSE_HEADER = 21;
const SPARSE_ENTRY = 24; // offset[12] numbytes[12]
// field offsets in the header block
const H_NAME = 0;
const H_MODE = 100;
const H_UID = 108;
const H_GID = 116;
const H_SIZE = 124;
const H_MTIME = 136;
const H_CHKSUM = 148;
const H_TYPEFLAG = 156;
const H_MAGIC = 257;
const H_UNAME = 265;
const H_GNAME = 297;
const H_SP = 386; // struct sparse sp[4]
const H_ISEXTENDED = 482;
const H_REALSIZE = 483;
// field offsets in an extension block (struct sparse_header)
const X_SP = 0; // struct sparse sp[21]
const X_ISEXTENDED = 504;

const MEMBER = 'disk.raw';
const MODE = 0o644;

/**
 * Zero gaps shorter than this between two non-zero regions are stored (as
 * zeros) rather than given their own map entry. One sector: only touching
 * regions merge. (Closing 4 KiB or 64 KiB gaps made the fixture's view
 * bigger, not smaller: a map entry costs less than a stored zero run.)
 */
const MIN_HOLE = SECTOR;

/** A numeric field as GNU tar writes it: octal with a NUL if it fits, else base-256 (0x80, then big-endian). */
function numField(b: Buffer, off: number, width: number, value: bigint): void {
  if (value < 0n) throw new Error('negative tar field');
  if (value < 8n ** BigInt(width - 1)) {
    b.write(value.toString(8).padStart(width - 1, '0') + '\0', off, width, 'latin1');
    return;
  }
  let v = value;
  for (let i = width - 1; i >= 1; i--) {
    b[off + i] = Number(v & 0xffn);
    v >>= 8n;
  }
  if (v !== 0n) throw new Error('tar field overflow');
  b[off] = 0x80;
}

export interface SparseRegion {
  offset: number;
  numbytes: number;
}

/**
 * The non-zero regions of the disk, sector-aligned: every pool block whole,
 * the non-zero sectors of the literals, touching runs merged.
 * As GNU tar does, a disk that ends in a hole gets a last, empty region at
 * its end.
 */
export function sparseMap(image: DiskImage): SparseRegion[] {
  const out: SparseRegion[] = [];
  const add = (start: number, end: number) => {
    const last = out[out.length - 1];
    if (last && start - (last.offset + last.numbytes) < MIN_HOLE) {
      last.numbytes = Math.max(last.offset + last.numbytes, end) - last.offset;
    } else {
      out.push({ offset: start, numbytes: end - start });
    }
  };
  for (const p of image.pieces) {
    if (p.kind === 'pool') {
      add(Math.floor(p.offset / SECTOR) * SECTOR, Math.min(image.size, Math.ceil((p.offset + p.len) / SECTOR) * SECTOR));
      continue;
    }
    const end = p.offset + p.data.length;
    for (let s = Math.floor(p.offset / SECTOR) * SECTOR; s < end; s += SECTOR) {
      const from = Math.max(s, p.offset) - p.offset;
      const to = Math.min(s + SECTOR, end) - p.offset;
      let nonZero = false;
      for (let i = from; i < to && !nonZero; i++) nonZero = p.data[i] !== 0;
      if (nonZero) add(s, Math.min(image.size, s + SECTOR));
    }
  }
  const last = out[out.length - 1];
  if (!last || last.offset + last.numbytes < image.size) out.push({ offset: image.size, numbytes: 0 });
  return out;
}

function putSparse(b: Buffer, off: number, r: SparseRegion): void {
  numField(b, off, 12, BigInt(r.offset));
  numField(b, off + 12, 12, BigInt(r.numbytes));
}

/** The member's header block and its sparse extension blocks. */
function headers(map: SparseRegion[], realsize: number, stored: number, mtimeSec: bigint): Buffer {
  const h = Buffer.alloc(BLOCKSIZE);
  h.write(MEMBER, H_NAME, 100, 'latin1');
  numField(h, H_MODE, 8, BigInt(MODE));
  numField(h, H_UID, 8, 0n);
  numField(h, H_GID, 8, 0n);
  numField(h, H_SIZE, 12, BigInt(stored)); // the bytes stored, not the disk size
  numField(h, H_MTIME, 12, mtimeSec < 0n ? 0n : mtimeSec);
  h.write(GNUTYPE_SPARSE, H_TYPEFLAG, 1, 'latin1');
  h.write(OLDGNU_MAGIC, H_MAGIC, 8, 'latin1');
  h.write('root', H_UNAME, 32, 'latin1');
  h.write('root', H_GNAME, 32, 'latin1');
  const inHeader = Math.min(map.length, SPARSES_IN_OLDGNU_HEADER);
  for (let i = 0; i < inHeader; i++) putSparse(h, H_SP + i * SPARSE_ENTRY, map[i]);
  h[H_ISEXTENDED] = map.length > SPARSES_IN_OLDGNU_HEADER ? 1 : 0;
  numField(h, H_REALSIZE, 12, BigInt(realsize));
  h.fill(0x20, H_CHKSUM, H_CHKSUM + 8);
  let sum = 0;
  for (let i = 0; i < BLOCKSIZE; i++) sum += h[i];
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', H_CHKSUM, 8, 'latin1');
  const blocks = [h];
  for (let i = inHeader; i < map.length; i += SPARSES_IN_SPARSE_HEADER) {
    const x = Buffer.alloc(BLOCKSIZE);
    const n = Math.min(SPARSES_IN_SPARSE_HEADER, map.length - i);
    for (let k = 0; k < n; k++) putSparse(x, X_SP + k * SPARSE_ENTRY, map[i + k]);
    x[X_ISEXTENDED] = i + n < map.length ? 1 : 0;
    blocks.push(x);
  }
  return Buffer.concat(blocks);
}

/** The stored bytes of the regions: the disk's pieces clipped to them, zeros between. */
function regionData(image: DiskImage, map: SparseRegion[], out: PieceList): void {
  const pieces = image.pieces;
  let pi = 0;
  for (const r of map) {
    const end = r.offset + r.numbytes;
    let pos = r.offset;
    while (pi < pieces.length) {
      const p = pieces[pi];
      const pEnd = p.offset + (p.kind === 'lit' ? p.data.length : p.len);
      if (pEnd <= pos) { pi++; continue; }
      if (p.offset >= end) break;
      if (p.offset > pos) out.zeros(p.offset - pos);
      if (p.kind === 'pool') {
        if (p.offset < r.offset || pEnd > end) throw new Error(`pool block ${p.id} crosses a sparse region`);
        out.block(p.id, p.len);
        pos = pEnd;
        pi++;
      } else {
        const from = Math.max(pos, p.offset);
        const to = Math.min(end, pEnd);
        out.bytes(p.data.subarray(from - p.offset, to - p.offset));
        pos = to;
        if (to === pEnd) pi++;
        else break; // the literal goes on in the next region
      }
    }
    out.zeros(end - pos);
  }
}

export async function gceTarGz(ctx: FormatContext): Promise<{ recipe: Recipe; tarSize: number; regions: number }> {
  const d = familyDisk(ctx, 'openstack');
  const map = sparseMap(d.image);
  const stored = map.reduce((s, r) => s + r.numbytes, 0);
  const out = new PieceList();
  out.bytes(headers(map, d.size, stored, ctx.mtimeSec));
  regionData(d.image, map, out);
  if (out.size % BLOCKSIZE) out.zeros(BLOCKSIZE - (out.size % BLOCKSIZE));
  // end of archive: two zero blocks, then up to a whole record
  out.zeros(2 * BLOCKSIZE);
  if (out.size % RECORD) out.zeros(RECORD - (out.size % RECORD));
  const gz = await ctx.gzip.compile(out.done());
  return { recipe: gz.recipe, tarSize: gz.size, regions: map.length };
}

export const gce: Format = {
  name: 'gce',
  family: 'openstack',
  async build(ctx) {
    const { recipe } = await gceTarGz(ctx);
    return [{
      path: `gce/${ctx.names.name}.tar.gz`, recipe, format: 'gce',
      description: 'Google Compute Engine image (disk.raw in a sparse oldgnu tar.gz; gcloud compute images create --source-uri)',
    }];
  },
};
