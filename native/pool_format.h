/*
 * The pool and recipe conventions the addon shares with the TypeScript:
 * src/pool/format.ts (block flags, stored deflate blocks, check states,
 * inflate statuses, the read gap) and src/recipe/recipe.ts (segment kinds).
 * test/unit/pool-recipe.test.ts checks that both sides say the same.
 */
#ifndef UNISO_POOL_FORMAT_H
#define UNISO_POOL_FORMAT_H

/* block flag: the pool keeps the block's raw bytes */
#define FLAG_RAW 1
/* most data bytes in one stored deflate block, and the size of its header */
#define STORED_MAX 65535
#define STORED_HEADER 5
/* pool bytes this far apart are still read as one run (the gap into a scratch buffer) */
#define RUN_GAP_MAX 16

/* a block's check state in the store: not checked yet, good, corrupt */
enum { CHECK_UNCHECKED = 0, CHECK_GOOD = 1, CHECK_CORRUPT = 2 };
/* recipe segment kinds */
enum { SEG_ZERO = 0, SEG_LITERAL = 1, SEG_RAW = 2, SEG_DEFLATE = 3, SEG_INCLUDE = 4 };
/* what inflateBlocks says of each block */
enum { BLOCK_OK = 0, BLOCK_STORED_BAD = 1, BLOCK_INFLATE_BAD = 2, BLOCK_CRC_BAD = 3, BLOCK_SHORT = 4 };

#endif
