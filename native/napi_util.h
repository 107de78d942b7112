/* Small N-API helpers the addon's files share. */
#ifndef UNISO_NAPI_UTIL_H
#define UNISO_NAPI_UTIL_H
#include <node_api.h>
#include <stdint.h>
#include <stddef.h>

/* Element k of a JavaScript array, when it is a Buffer: its bytes. 1 when it is, 0 otherwise. */
static inline int buffer_at(napi_env env, napi_value array, uint32_t k, void **data, size_t *len) {
  napi_value b;
  bool is_buf;
  return napi_get_element(env, array, k, &b) == napi_ok && napi_is_buffer(env, b, &is_buf) == napi_ok && is_buf &&
    napi_get_buffer_info(env, b, data, len) == napi_ok;
}

/* Queue `execute` on the thread pool, then `complete` on the JavaScript thread; the work is kept in *work. */
static inline void queue_job(napi_env env, const char *name, napi_async_execute_callback execute,
  napi_async_complete_callback complete, void *data, napi_async_work *work) {
  napi_value n;
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &n);
  napi_create_async_work(env, NULL, n, execute, complete, data, work);
  napi_queue_async_work(env, *work);
}

#endif
