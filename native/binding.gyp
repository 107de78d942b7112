{
  "targets": [
    {
      "target_name": "uniso_native",
      "sources": ["uniso_native.c", "splice_read.c", "deflate_blocks.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"],
      "libraries": ["-llzma", "-lzstd", "-llz4", "-llzo2", "-ldeflate"]
    }
  ]
}
