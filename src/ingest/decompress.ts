// Block decompression for squashfs input: gzip (zlib streams) through Node's
// zlib, every other squashfs codec through our native addon (native/). Both
// run on the libuv thread pool.

import * as path from 'node:path';
import * as zlib from 'node:zlib';

export const CODEC_NAMES: Record<number, string> = { 1: 'gzip', 2: 'lzma', 3: 'lzo', 4: 'xz', 5: 'lz4', 6: 'zstd' };

type NativeDecompress = (codec: number, input: Buffer, outSize: number, cb: (err: Error | null, out?: Buffer) => void) => void;
let nativeFn: NativeDecompress | undefined;

function native(): NativeDecompress {
  if (!nativeFn) {
    const file = path.join(__dirname, '..', '..', 'native', 'build', 'Release', 'uniso_native.node');
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      nativeFn = (require(file) as { decompress: NativeDecompress }).decompress;
    } catch (e) {
      throw new Error(`native decompressor not available (${file}: ${(e as Error).message}); run "make build"`);
    }
  }
  return nativeFn;
}

export type Decompressor = (input: Buffer, maxOut: number) => Promise<Buffer>;

export function decompressorFor(codec: number): Decompressor {
  if (codec === 1) {
    return (input, maxOut) => new Promise((resolve, reject) => {
      zlib.inflate(input, { chunkSize: Math.max(1024, maxOut), maxOutputLength: maxOut }, (err, out) =>
        err ? reject(err) : resolve(out));
    });
  }
  if (!(codec in CODEC_NAMES)) throw new Error(`unknown compression id ${codec}`);
  const fn = native();
  return (input, maxOut) => new Promise((resolve, reject) => {
    fn(codec, input, maxOut, (err, out) => (err ? reject(err) : resolve(out!)));
  });
}
