/* The addon's spliced-view reader (splice_read.c), registered by uniso_native.c. */
#ifndef UNISO_SPLICE_READ_H
#define UNISO_SPLICE_READ_H
#include <node_api.h>

napi_value splice_context(napi_env env, napi_callback_info info);
napi_value splice_read(napi_env env, napi_callback_info info);

#endif
