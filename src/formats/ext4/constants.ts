// ext4 on-disk constants (names after the kernel's / e2fsprogs' headers).

export const BLOCK_SIZE = 4096;
export const LOG_BLOCK_SIZE = 2; // 1024 << 2
export const BLOCKS_PER_GROUP = 32768; // 8 * BLOCK_SIZE bits in a block bitmap
export const INODE_SIZE = 256;
export const EXTRA_ISIZE = 32;
export const SUPERBLOCK_OFFSET = 1024;
export const GROUP_DESC_SIZE = 32; // no 64bit feature
export const INODE_RATIO = 16384; // bytes per inode, as mke2fs's default
export const GRAIN_BLOCKS = 16; // 64 KiB grain (VMDK grain / qcow2 cluster / pool block) in fs blocks

export const EXT4_SUPER_MAGIC = 0xef53;
export const EXT4_STATE_CLEAN = 1;
export const EXT4_ERRORS_CONTINUE = 1;
export const EXT4_DYNAMIC_REV = 1;
export const EXT4_OS_LINUX = 0;

// feature flags
export const COMPAT_HAS_JOURNAL = 0x4;
export const COMPAT_EXT_ATTR = 0x8;
export const COMPAT_DIR_INDEX = 0x20;
export const INCOMPAT_FILETYPE = 0x2;
export const INCOMPAT_EXTENTS = 0x40;
export const INCOMPAT_FLEX_BG = 0x200;
export const RO_COMPAT_SPARSE_SUPER = 0x1;
export const RO_COMPAT_LARGE_FILE = 0x2;
export const RO_COMPAT_HUGE_FILE = 0x8;
export const RO_COMPAT_DIR_NLINK = 0x20;
export const RO_COMPAT_EXTRA_ISIZE = 0x40;

export const DEFM_XATTR_USER = 0x4;
export const DEFM_ACL = 0x8;
export const EXT2_FLAGS_SIGNED_HASH = 0x1;
export const DX_HASH_HALF_MD4 = 1;
export const JNL_BACKUP_BLOCKS = 1;

// reserved inodes
export const ROOT_INO = 2;
export const JOURNAL_INO = 8;
export const FIRST_INO = 11; // lost+found
export const LOST_FOUND_BLOCKS = 4;

// i_mode type bits
export const S_IFIFO = 0o010000;
export const S_IFCHR = 0o020000;
export const S_IFDIR = 0o040000;
export const S_IFBLK = 0o060000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
export const S_IFSOCK = 0o140000;

// i_flags
export const EXT4_EXTENTS_FL = 0x80000;

// directory entry file types
export const FT_REG = 1;
export const FT_DIR = 2;
export const FT_CHRDEV = 3;
export const FT_BLKDEV = 4;
export const FT_FIFO = 5;
export const FT_SOCK = 6;
export const FT_SYMLINK = 7;

// extents
export const EXT4_EXT_MAGIC = 0xf30a;
export const EXT_MAX_INIT_LEN = 32768;
export const EXT_ROOT_MAX = 4; // entries in i_block
export const EXT_BLOCK_MAX = (BLOCK_SIZE - 12) / 12; // 340 entries per tree block
export const FAST_SYMLINK_MAX = 59;
export const DIR_NLINK_MAX = 65000;

// extended attributes
export const XATTR_MAGIC = 0xea020000;
export const XATTR_INDEX_USER = 1;
export const XATTR_INDEX_POSIX_ACL_ACCESS = 2;
export const XATTR_INDEX_POSIX_ACL_DEFAULT = 3;
export const XATTR_INDEX_TRUSTED = 4;
export const XATTR_INDEX_SECURITY = 6;
export const XATTR_INDEX_SYSTEM = 7;

// jbd2 (big-endian)
export const JBD2_MAGIC = 0xc03b3998;
export const JBD2_SUPERBLOCK_V2 = 4;
