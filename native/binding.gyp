{
  "targets": [
    {
      "target_name": "uniso_native",
      "sources": ["decompress.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"],
      "libraries": ["-llzma", "-lzstd", "-llz4", "-llzo2"]
    }
  ]
}
