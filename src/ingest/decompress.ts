// Block decompression for squashfs input: gzip (zlib streams) through Node's
// zlib, every other squashfs codec through our native addon (native/). Both
// run on the libuv thread pool.

import * as zlib from 'node:zlib';
import { native } from '../native';

export const CODEC_NAMES: Record<number, string> = { 1: 'gzip', 2: 'lzma', 3: 'lzo', 4: 'xz', 5: 'lz4', 6: 'zstd' };

export type Decompressor = (input: Buffer, maxOut: number) => Promise<Buffer>;

export function decompressorFor(codec: number): Decompressor {
  if (codec === 1) {
    return (input, maxOut) => new Promise((resolve, reject) => {
      zlib.inflate(input, { chunkSize: Math.max(1024, maxOut), maxOutputLength: maxOut }, (err, out) =>
        err ? reject(err) : resolve(out));
    });
  }
  if (!(codec in CODEC_NAMES)) throw new Error(`unknown compression id ${codec}`);
  const addon = native();
  return (input, maxOut) => new Promise((resolve, reject) => {
    addon.decompress(codec, input, maxOut, (err, out) => (err ? reject(err) : resolve(out!)));
  });
}
