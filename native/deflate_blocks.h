/* The addon's pool block compressor (deflate_blocks.c), registered by uniso_native.c. */
#ifndef UNISO_DEFLATE_BLOCKS_H
#define UNISO_DEFLATE_BLOCKS_H
#include <node_api.h>

napi_value deflate_blocks(napi_env env, napi_callback_info info);

#endif
