/*
 * fork() for Node on Linux, for a dedicated fork server (see
 * src/jobs/sandbox/fork-server.ts for the conditions it must run under: V8
 * started with --single-threaded, no libuv thread-pool work, no open handles
 * but its IPC channel).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <node_api.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#define CHECK(call)                                                   \
  do {                                                                \
    if ((call) != napi_ok) {                                          \
      napi_throw_error(env, NULL, "sandbox_fork: " #call " failed");  \
      return NULL;                                                    \
    }                                                                 \
  } while (0)

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_throw_error(env, NULL, msg);
  return NULL;
}

/*
 * V8 maps its heap MADV_DONTFORK: a child would fault on its first touch of
 * the heap. Before each fork every private area is made inheritable again,
 * code and read-only pages included (MADV_DOFORK is a no-op on areas not
 * marked; V8 marks the areas it maps
 * later, so this runs each time). /proc/self/maps, unlike smaps, does not show
 * the flag, but it costs no page-table walk to read.
 */
static int let_heap_be_forked(void) {
  FILE *f = fopen("/proc/self/maps", "re");
  if (!f) return -errno;
  char line[512];
  int err = 0;
  while (fgets(line, sizeof line, f)) {
    unsigned long start, end;
    char perms[5];
    if (sscanf(line, "%lx-%lx %4s", &start, &end, perms) != 3) continue;
    /* [vsyscall], [vdso], [vvar]: the kernel's, not VMAs madvise works on. */
    if (perms[3] != 'p' || strstr(line, " [v")) continue;
    /* EINVAL: an area madvise does not apply to (VM_IO, VM_PFNMAP); those are never V8's. */
    if (madvise((void *)start, end - start, MADV_DOFORK) != 0 && errno != EINVAL && !err) err = -errno;
  }
  fclose(f);
  return err;
}

static napi_value Fork(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t sever_fd;
  uv_loop_t *loop;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_value_int32(env, argv[0], &sever_fd) != napi_ok) {
    napi_throw_type_error(env, NULL, "fork(severFd): severFd must be a file descriptor");
    return NULL;
  }
  CHECK(napi_get_uv_event_loop(env, &loop));
  int err = let_heap_be_forked();
  if (err) return throw_errno(env, "fork: madvise(MADV_DOFORK)", -err);

  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) return throw_errno(env, "fork", errno);
  if (pid == 0) {
    /* Die with the fork server; and if it is already gone, now. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) _exit(70);
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) _exit(71);
    if (dup3(pair[0], sever_fd, O_CLOEXEC) < 0) _exit(72);
    close(pair[0]);
    close(pair[1]);
    int r = uv_loop_fork(loop);
    if (r != 0) {
      fprintf(stderr, "sandbox child: uv_loop_fork: %s\n", uv_strerror(r));
      _exit(73);
    }
  }
  napi_value out;
  CHECK(napi_create_int32(env, pid, &out));
  return out;
}

static napi_value set_int_or_null(napi_env env, napi_value obj, const char *key, int present, int value) {
  napi_value v;
  if (present) {
    if (napi_create_int32(env, value, &v) != napi_ok) return NULL;
  } else if (napi_get_null(env, &v) != napi_ok) {
    return NULL;
  }
  return napi_set_named_property(env, obj, key, v) == napi_ok ? obj : NULL;
}

static napi_value Reap(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value list;
  uint32_t n = 0;
  CHECK(napi_create_array(env, &list));
  for (;;) {
    int status;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid == 0 || (pid < 0 && errno == ECHILD)) break;
    if (pid < 0) {
      if (errno == EINTR) continue;
      return throw_errno(env, "waitpid", errno);
    }
    napi_value item, v;
    CHECK(napi_create_object(env, &item));
    CHECK(napi_create_int32(env, pid, &v));
    CHECK(napi_set_named_property(env, item, "pid", v));
    if (!set_int_or_null(env, item, "code", WIFEXITED(status), WEXITSTATUS(status))) return NULL;
    if (!set_int_or_null(env, item, "signal", WIFSIGNALED(status), WTERMSIG(status))) return NULL;
    CHECK(napi_set_element(env, list, n++, item));
  }
  return list;
}

static napi_value GetPid(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  CHECK(napi_create_int32(env, getpid(), &out));
  return out;
}

static napi_value Exit(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t code = 0;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc >= 1 && napi_get_value_int32(env, argv[0], &code) != napi_ok) code = 1;
  _exit(code & 0xff);
}

static napi_value Init(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"fork", NULL, Fork, NULL, NULL, NULL, napi_enumerable, NULL},
      {"reap", NULL, Reap, NULL, NULL, NULL, napi_enumerable, NULL},
      {"getpid", NULL, GetPid, NULL, NULL, NULL, napi_enumerable, NULL},
      {"exit", NULL, Exit, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  CHECK(napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
