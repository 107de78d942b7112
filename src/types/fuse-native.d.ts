// Type declarations for the parts of fuse-native (which ships none) that uniso uses.
declare module 'fuse-native' {
  class Fuse {
    constructor(mountpoint: string, ops: Record<string, unknown>, opts?: Record<string, unknown>);
    mount(cb: (err: Error | null) => void): void;
    unmount(cb: (err: Error | null) => void): void;
    static unmount(mountpoint: string, cb: (err: Error | null) => void): void;
    static ENOENT: number;
    static EIO: number;
    static EBADF: number;
    static EROFS: number;
    static EISDIR: number;
    static ENOTDIR: number;
    static EINVAL: number;
    static EACCES: number;
    static ENODATA: number;
  }
  export = Fuse;
}
