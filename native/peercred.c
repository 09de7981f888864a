/*
 * peercred: the kernel's credentials of the process at the other end of a connected unix socket
 * (SO_PEERCRED: pid, uid and gid as they were when it called connect()). Node has no API for it;
 * the control socket takes the caller's identity from here, never from what the client says.
 *
 *   peerCred(fd) -> { pid, uid, gid }      throws on any failure (never guesses)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <node_api.h>

static napi_value fail(napi_env env, const char *what, int err) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_throw_error(env, NULL, msg);
  return NULL;
}

static int set_u32(napi_env env, napi_value obj, const char *key, uint32_t v) {
  napi_value n;
  if (napi_create_uint32(env, v, &n) != napi_ok) return -1;
  return napi_set_named_property(env, obj, key, n) == napi_ok ? 0 : -1;
}

static napi_value peer_cred(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd = -1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, NULL, "peerCred: expected one file descriptor (a non-negative integer)");
    return NULL;
  }
  struct ucred cred;
  socklen_t len = sizeof cred;
  memset(&cred, 0, sizeof cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return fail(env, "getsockopt(SO_PEERCRED)", errno);
  if (len != sizeof cred) return fail(env, "getsockopt(SO_PEERCRED): short answer", EPROTO);
  napi_value obj;
  if (napi_create_object(env, &obj) != napi_ok || set_u32(env, obj, "pid", (uint32_t)cred.pid) ||
      set_u32(env, obj, "uid", (uint32_t)cred.uid) || set_u32(env, obj, "gid", (uint32_t)cred.gid)) {
    napi_throw_error(env, NULL, "peerCred: could not build the result");
    return NULL;
  }
  return obj;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  if (napi_create_function(env, "peerCred", NAPI_AUTO_LENGTH, peer_cred, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "peerCred", fn) != napi_ok) {
    napi_throw_error(env, NULL, "peercred: could not register peerCred");
    return NULL;
  }
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
