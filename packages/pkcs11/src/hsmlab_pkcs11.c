/*
 * libhsmlab_pkcs11.so: a PKCS#11 v2.40 library that talks to hsmlab's client daemon
 * (hsmlab-client, packages/client-daemon) on a Unix socket, as CloudHSM's Client SDK 3 library
 * talks to cloudhsm_client. docs/pkcs11.md says what it does and the protocol it speaks.
 *
 * Slots: one per daemon socket, from HSMLAB_PKCS11_SOCKETS (paths separated by ':') or
 * HSMLAB_PKCS11_SOCKET (one path); slot IDs are 0, 1, ... in that order.
 * HSMLAB_PKCS11_TIMEOUT_MS bounds every call to the daemon (default 30000): past it, or when the
 * daemon cannot be reached, the call returns CKR_DEVICE_ERROR.
 *
 * Threads: CKF_OS_LOCKING_OK (pthreads). A global lock guards the session table; each slot has a
 * pool of sockets, one request at a time on each, so threads work in parallel. One socket per
 * slot (the anchor) is held open and never used for requests: the daemon keeps an application's
 * login while any of its sockets is open, so a socket closed after a timeout does not log out.
 *
 * fork(): the child's state is reset by a pthread_atfork handler; as PKCS#11 asks, the child calls
 * C_Initialize again (until then CKR_CRYPTOKI_NOT_INITIALIZED), and gets a new application token,
 * so it logs in on its own.
 *
 * Multi-part operations gather their input and send it at Final (the HSM does one-shot calls);
 * a size query (NULL output buffer) runs the operation and keeps its result for the next call.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

#define EXPORT __attribute__((visibility("default")))

/* Daemon protocol (packages/client-daemon/src/wire.ts). */
enum {
  OP_HELLO = 1, OP_LOGIN = 2, OP_LOGOUT = 3, OP_OPEN_SESSION = 4, OP_CLOSE_SESSION = 5, OP_FIND = 6, OP_GET_ATTRS = 7,
  OP_SET_ATTRS = 8, OP_GENERATE_KEY = 9, OP_GENERATE_KEY_PAIR = 10, OP_DESTROY = 11, OP_ENCRYPT = 12, OP_DECRYPT = 13,
  OP_SIGN = 14, OP_VERIFY = 15, OP_DIGEST = 16, OP_WRAP = 17, OP_UNWRAP = 18, OP_RANDOM = 19, OP_PING = 20, OP_CREATE_OBJECT = 21
};
enum {
  TAG_APP = 1, TAG_USER = 2, TAG_PIN = 3, TAG_SESSION = 4, TAG_HANDLE = 5, TAG_MECHANISM = 6, TAG_DATA = 7, TAG_SIGNATURE = 8,
  TAG_IV = 9, TAG_AAD = 10, TAG_TAG_BITS = 11, TAG_HASH_MECHANISM = 12, TAG_SALT_BYTES = 13, TAG_OAEP_LABEL = 14,
  TAG_ULONG_BYTES = 15, TAG_HANDLE2 = 16, TAG_COUNT = 17, TAG_ATTR = 20, TAG_ATTR_TYPE = 21, TAG_ATTR_INVALID = 22,
  TAG_ATTR_SENSITIVE = 23, TAG_PUB_ATTR = 25, TAG_TOKEN_LABEL = 30, TAG_SERIAL = 31, TAG_MODEL = 32, TAG_CLUSTER_ID = 33,
  TAG_HSMS = 34, TAG_MESSAGE = 40
};

/* Limits (documented in docs/pkcs11.md). */
#define SLOTS_MAX 16
#define POOL_MAX 32
#define TIMEOUT_MS_DEFAULT 30000
#define FRAME_BYTES_MAX (17u * 1024u * 1024u)
#define MULTIPART_BYTES_MAX (16u * 1024u * 1024u)

/* ------------------------------------------------------------------------------------------ */
/* Buffers */

typedef struct { uint8_t *p; size_t len, cap; int failed; } buf_t;

static void buf_reserve (buf_t *b, size_t more) {
  if (b->failed) return;
  if (b->len + more <= b->cap) return;
  size_t cap = b->cap == 0 ? 256 : b->cap;
  while (cap < b->len + more) cap *= 2;
  uint8_t *p = realloc(b->p, cap);
  if (p == NULL) { b->failed = 1; return; }
  b->p = p;
  b->cap = cap;
}

static void buf_put (buf_t *b, const void *data, size_t n) {
  buf_reserve(b, n);
  if (b->failed) return;
  if (n > 0) memcpy(b->p + b->len, data, n);
  b->len += n;
}

static void put_be (buf_t *b, uint64_t v, int bytes) {
  uint8_t tmp[8];
  for (int i = 0; i < bytes; i++) tmp[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
  buf_put(b, tmp, (size_t)bytes);
}

static void field (buf_t *b, int tag, const void *data, size_t n) {
  put_be(b, (uint64_t)tag, 2);
  put_be(b, (uint64_t)n, 4);
  buf_put(b, data, n);
}

static void field_u64 (buf_t *b, int tag, uint64_t v) {
  put_be(b, (uint64_t)tag, 2);
  put_be(b, 8, 4);
  put_be(b, v, 8);
}

static void field_attr (buf_t *b, int tag, CK_ATTRIBUTE_TYPE type, const void *value, size_t n) {
  put_be(b, (uint64_t)tag, 2);
  put_be(b, (uint64_t)(8 + n), 4);
  put_be(b, (uint64_t)type, 8);
  buf_put(b, value, n);
}

static void field_template (buf_t *b, int tag, CK_ATTRIBUTE_PTR t, CK_ULONG n) {
  for (CK_ULONG i = 0; i < n; i++) field_attr(b, tag, t[i].type, t[i].pValue, t[i].pValue == NULL ? 0 : t[i].ulValueLen);
}

static uint64_t get_be (const uint8_t *p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; i++) v = (v << 8) | p[i];
  return v;
}

/* A response: rv and its fields. */
typedef struct { CK_RV rv; uint8_t *body; size_t len; } resp_t;

/* The index-th field with this tag (from 0); NULL when there is none. */
static const uint8_t *resp_field (const resp_t *r, int tag, int index, size_t *n) {
  size_t at = 4;
  while (at + 6 <= r->len) {
    int t = (int)get_be(r->body + at, 2);
    size_t len = (size_t)get_be(r->body + at + 2, 4);
    if (at + 6 + len > r->len) return NULL;
    if (t == tag && index-- == 0) { *n = len; return r->body + at + 6; }
    at += 6 + len;
  }
  return NULL;
}

static uint64_t resp_u64 (const resp_t *r, int tag, int index, int *found) {
  size_t n = 0;
  const uint8_t *p = resp_field(r, tag, index, &n);
  if (p == NULL || n != 8) { if (found) *found = 0; return 0; }
  if (found) *found = 1;
  return get_be(p, 8);
}

static void resp_free (resp_t *r) { free(r->body); r->body = NULL; r->len = 0; }

/* ------------------------------------------------------------------------------------------ */
/* State */

typedef struct {
  char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
  pthread_mutex_t lock;
  int pool[POOL_MAX];
  int pooled;
  int anchor;
  int logged_in;
  char label[33], serial[17], model[17];
  int have_info;
} slot_t;

enum { OPK_NONE = 0, OPK_ENCRYPT, OPK_DECRYPT, OPK_SIGN, OPK_VERIFY, OPK_DIGEST };

typedef struct {
  int kind;
  CK_MECHANISM_TYPE mechanism;
  CK_OBJECT_HANDLE key;
  buf_t params;          /* encoded mechanism parameter fields */
  buf_t input;           /* gathered multi-part input */
  uint8_t *result;       /* kept after a size query */
  size_t result_len;
  int have_result;
} op_t;

typedef struct session {
  CK_SESSION_HANDLE handle;
  CK_SLOT_ID slot;
  CK_FLAGS flags;
  op_t crypt;            /* encrypt, decrypt, sign or verify */
  op_t digest;
  CK_OBJECT_HANDLE *found;
  CK_ULONG found_count, found_pos;
  int finding;
  struct session *next;
} session_t;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_initialized;
static uint8_t g_app[16];
static slot_t g_slots[SLOTS_MAX];
static int g_slot_count;
static int g_timeout_ms = TIMEOUT_MS_DEFAULT;
static session_t *g_sessions;
static CK_SESSION_HANDLE g_next_session = 1;
static int g_atfork_registered;

static void op_clear (op_t *op) {
  free(op->params.p);
  free(op->input.p);
  free(op->result);
  memset(op, 0, sizeof(*op));
}

/* Child of fork(): forget everything without touching locks another thread may have held. */
static void atfork_child (void) {
  pthread_mutex_init(&g_lock, NULL);
  for (int i = 0; i < g_slot_count; i++) {
    slot_t *s = &g_slots[i];
    for (int k = 0; k < s->pooled; k++) close(s->pool[k]);
    if (s->anchor >= 0) close(s->anchor);
    pthread_mutex_init(&s->lock, NULL);
  }
  session_t *se = g_sessions;
  while (se != NULL) {
    session_t *next = se->next;
    op_clear(&se->crypt);
    op_clear(&se->digest);
    free(se->found);
    free(se);
    se = next;
  }
  g_sessions = NULL;
  g_slot_count = 0;
  g_initialized = 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Talking to the daemon */

static long long now_ms (void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int wait_fd (int fd, short events, long long deadline) {
  for (;;) {
    long long left = deadline - now_ms();
    if (left <= 0) return -1;
    struct pollfd p = { .fd = fd, .events = events };
    int r = poll(&p, 1, (int)(left > 60000 ? 60000 : left));
    if (r > 0) return 0;
    if (r < 0 && errno != EINTR) return -1;
  }
}

static int write_all (int fd, const uint8_t *p, size_t n, long long deadline) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) { p += w; n -= (size_t)w; continue; }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) { if (wait_fd(fd, POLLOUT, deadline) != 0) return -1; continue; }
    return -1;
  }
  return 0;
}

static ssize_t read_some (int fd, uint8_t *p, size_t cap, long long deadline);

static int read_all (int fd, uint8_t *p, size_t n, long long deadline) {
  while (n > 0) {
    ssize_t r = read_some(fd, p, n, deadline);
    if (r < 0) return -1;
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

/* Reads up to cap bytes, at least one, waiting first: the daemon answers after the request, so
 * waiting before reading saves the read that would find nothing (syscalls are this library's main
 * cost per call). 0 bytes read (the daemon closed) and timeouts are -1. */
static ssize_t read_some (int fd, uint8_t *p, size_t cap, long long deadline) {
  for (;;) {
    if (wait_fd(fd, POLLIN, deadline) != 0) return -1;
    ssize_t r = recv(fd, p, cap, MSG_DONTWAIT);
    if (r > 0) return r;
    if (r == 0) return -1;
    if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
    return -1;
  }
}

/* Most answers (handles, signatures, 4 KiB of ciphertext) fit in this: one read takes the whole answer. */
#define FIRST_READ_BYTES 16384

/* Sends one request (op and fields) and reads its answer; -1 on any I/O failure or timeout. */
static int exchange (int fd, int op, const buf_t *fields, resp_t *out, long long deadline) {
  uint8_t head[8];
  size_t body = 4 + fields->len;
  head[0] = (uint8_t)(body >> 24); head[1] = (uint8_t)(body >> 16); head[2] = (uint8_t)(body >> 8); head[3] = (uint8_t)body;
  head[4] = (uint8_t)(op >> 8); head[5] = (uint8_t)op; head[6] = 0; head[7] = 0;
  /* Header and fields in one send (one syscall, and one read for the daemon); the rest, if the
   * socket took only part, by write_all. */
  struct iovec iov[2] = { { .iov_base = head, .iov_len = 8 }, { .iov_base = fields->p, .iov_len = fields->len } };
  struct msghdr msg = { .msg_iov = iov, .msg_iovlen = fields->len > 0 ? 2 : 1 };
  ssize_t sent;
  do sent = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT); while (sent < 0 && errno == EINTR);
  if (sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return -1;
  size_t done = sent < 0 ? 0 : (size_t)sent;
  if (done < 8 && write_all(fd, head + done, 8 - done, deadline) != 0) return -1;
  size_t fields_done = done > 8 ? done - 8 : 0;
  if (write_all(fd, fields->p + fields_done, fields->len - fields_done, deadline) != 0) return -1;
  /* The answer: its length and as much of it as has come, in one read; then the rest. Only one
   * request is in flight on a socket, so nothing after this answer can be read by mistake. */
  uint8_t first[FIRST_READ_BYTES];
  size_t got = 0;
  while (got < 4) {
    ssize_t r = read_some(fd, first + got, sizeof(first) - got, deadline);
    if (r < 0) return -1;
    got += (size_t)r;
  }
  size_t len = (size_t)get_be(first, 4);
  if (len < 4 || len > FRAME_BYTES_MAX || got > 4 + len) return -1;
  uint8_t *b = malloc(len);
  if (b == NULL) return -1;
  memcpy(b, first + 4, got - 4);
  if (read_all(fd, b + (got - 4), len - (got - 4), deadline) != 0) { free(b); return -1; }
  out->body = b;
  out->len = len;
  out->rv = (CK_RV)get_be(b, 4);
  return 0;
}

static void copy_padded (char *dst, size_t cap, const uint8_t *src, size_t n) {
  if (n > cap - 1) n = cap - 1;
  memcpy(dst, src, n);
  dst[n] = 0;
}

/* A new socket to the slot's daemon, greeted with HELLO; -1 when the daemon cannot be reached. */
static int open_socket (slot_t *s, long long deadline) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path, s->path, sizeof(addr.sun_path) - 1);
  if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
    if (errno != EINPROGRESS && errno != EAGAIN) { close(fd); return -1; }
    if (wait_fd(fd, POLLOUT, deadline) != 0) { close(fd); return -1; }
    int err = 0;
    socklen_t l = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) != 0 || err != 0) { close(fd); return -1; }
  }
  buf_t b = {0};
  field(&b, TAG_APP, g_app, sizeof(g_app));
  field_u64(&b, TAG_ULONG_BYTES, sizeof(CK_ULONG));
  resp_t r = {0};
  int ok = !b.failed && exchange(fd, OP_HELLO, &b, &r, deadline) == 0 && r.rv == CKR_OK;
  free(b.p);
  if (!ok) { resp_free(&r); close(fd); return -1; }
  pthread_mutex_lock(&s->lock);
  if (!s->have_info) {
    size_t n = 0;
    const uint8_t *p;
    if ((p = resp_field(&r, TAG_TOKEN_LABEL, 0, &n)) != NULL) copy_padded(s->label, sizeof(s->label), p, n);
    if ((p = resp_field(&r, TAG_SERIAL, 0, &n)) != NULL) copy_padded(s->serial, sizeof(s->serial), p, n);
    if ((p = resp_field(&r, TAG_MODEL, 0, &n)) != NULL) copy_padded(s->model, sizeof(s->model), p, n);
    s->have_info = 1;
  }
  pthread_mutex_unlock(&s->lock);
  resp_free(&r);
  return fd;
}

/* True when an idle socket was closed by the daemon (it restarted): it never sends unasked. */
static int stale (int fd) {
  struct pollfd p = { .fd = fd, .events = POLLIN };
  return poll(&p, 1, 0) != 0;
}

/* Makes sure the slot's anchor socket is open (it holds the application's login in the daemon). */
static int ensure_anchor (slot_t *s, long long deadline) {
  pthread_mutex_lock(&s->lock);
  if (s->anchor >= 0 && stale(s->anchor)) {
    /* The daemon that held the login is gone: a new one knows no login of this application. */
    close(s->anchor);
    s->anchor = -1;
    s->logged_in = 0;
  }
  int have = s->anchor >= 0;
  pthread_mutex_unlock(&s->lock);
  if (have) return 0;
  int fd = open_socket(s, deadline);
  if (fd < 0) return -1;
  pthread_mutex_lock(&s->lock);
  if (s->anchor < 0) { s->anchor = fd; fd = -1; }
  pthread_mutex_unlock(&s->lock);
  if (fd >= 0) close(fd);
  return 0;
}

/* One request to a slot's daemon. CKR_DEVICE_ERROR when it cannot be reached or does not answer in time. */
static CK_RV rpc (CK_SLOT_ID slot, int op, buf_t *fields, resp_t *out) {
  memset(out, 0, sizeof(*out));
  if (fields->failed) return CKR_HOST_MEMORY;
  if (slot >= (CK_SLOT_ID)g_slot_count) return CKR_SLOT_ID_INVALID;
  slot_t *s = &g_slots[slot];
  long long deadline = now_ms() + g_timeout_ms;
  int fd = -1;
  /* The anchor and a pooled socket are checked in one poll (ensure_anchor and stale() took one
   * each, per call): a daemon that restarted closed them both. */
  pthread_mutex_lock(&s->lock);
  if (s->anchor >= 0 && s->pooled > 0) {
    fd = s->pool[--s->pooled];
    struct pollfd p[2] = { { .fd = s->anchor, .events = POLLIN }, { .fd = fd, .events = POLLIN } };
    if (poll(p, 2, 0) > 0) {
      if (p[0].revents != 0) { close(s->anchor); s->anchor = -1; s->logged_in = 0; }
      if (p[1].revents != 0) { close(fd); fd = -1; }
    }
  }
  int anchored = s->anchor >= 0 && fd >= 0;
  pthread_mutex_unlock(&s->lock);
  if (!anchored) {
    if (ensure_anchor(s, deadline) != 0) { if (fd >= 0) close(fd); return CKR_DEVICE_ERROR; }
    pthread_mutex_lock(&s->lock);
    while (fd < 0 && s->pooled > 0) {
      fd = s->pool[--s->pooled];
      if (stale(fd)) { close(fd); fd = -1; }
    }
    pthread_mutex_unlock(&s->lock);
  }
  if (fd < 0) fd = open_socket(s, deadline);
  if (fd < 0) return CKR_DEVICE_ERROR;
  if (exchange(fd, op, fields, out, deadline) != 0) {
    /* The stream may hold half an answer: this socket is done. */
    close(fd);
    return CKR_DEVICE_ERROR;
  }
  pthread_mutex_lock(&s->lock);
  if (s->pooled < POOL_MAX) { s->pool[s->pooled++] = fd; fd = -1; }
  pthread_mutex_unlock(&s->lock);
  if (fd >= 0) close(fd);
  if (out->rv == CKR_USER_NOT_LOGGED_IN) {
    pthread_mutex_lock(&s->lock);
    s->logged_in = 0;
    pthread_mutex_unlock(&s->lock);
  }
  return out->rv;
}

/* ------------------------------------------------------------------------------------------ */
/* Sessions */

static CK_RV check_init (void) {
  return g_initialized ? CKR_OK : CKR_CRYPTOKI_NOT_INITIALIZED;
}

/* The session, or NULL. Sessions are freed only by C_CloseSession / C_Finalize, which PKCS#11 says the application must not race with calls on that session. */
static session_t *session_of (CK_SESSION_HANDLE h) {
  pthread_mutex_lock(&g_lock);
  session_t *s = g_sessions;
  while (s != NULL && s->handle != h) s = s->next;
  pthread_mutex_unlock(&g_lock);
  return s;
}

#define SESSION(var, h) \
  CK_RV rv_ = check_init(); if (rv_ != CKR_OK) return rv_; \
  session_t *var = session_of(h); if (var == NULL) return CKR_SESSION_HANDLE_INVALID;

static void pad (unsigned char *dst, size_t n, const char *src) {
  memset(dst, ' ', n);
  size_t l = strlen(src);
  memcpy(dst, src, l > n ? n : l);
}

/* ------------------------------------------------------------------------------------------ */
/* General */

static CK_FUNCTION_LIST function_list;

EXPORT CK_RV C_Initialize (CK_VOID_PTR pInitArgs) {
  pthread_mutex_lock(&g_lock);
  if (g_initialized) { pthread_mutex_unlock(&g_lock); return CKR_CRYPTOKI_ALREADY_INITIALIZED; }
  if (pInitArgs != NULL) {
    CK_C_INITIALIZE_ARGS *a = pInitArgs;
    if (a->pReserved != NULL) { pthread_mutex_unlock(&g_lock); return CKR_ARGUMENTS_BAD; }
    int some = a->CreateMutex != NULL || a->DestroyMutex != NULL || a->LockMutex != NULL || a->UnlockMutex != NULL;
    int all = a->CreateMutex != NULL && a->DestroyMutex != NULL && a->LockMutex != NULL && a->UnlockMutex != NULL;
    if (some && !all) { pthread_mutex_unlock(&g_lock); return CKR_ARGUMENTS_BAD; }
    /* Only the operating system's locks are used: mutex functions without CKF_OS_LOCKING_OK cannot be honoured. */
    if (all && !(a->flags & CKF_OS_LOCKING_OK)) { pthread_mutex_unlock(&g_lock); return CKR_CANT_LOCK; }
  }
  const char *list = getenv("HSMLAB_PKCS11_SOCKETS");
  if (list == NULL || *list == 0) list = getenv("HSMLAB_PKCS11_SOCKET");
  g_slot_count = 0;
  if (list != NULL) {
    const char *p = list;
    while (*p != 0 && g_slot_count < SLOTS_MAX) {
      const char *end = strchr(p, ':');
      size_t n = end == NULL ? strlen(p) : (size_t)(end - p);
      if (n > 0) {
        slot_t *s = &g_slots[g_slot_count++];
        memset(s, 0, sizeof(*s));
        if (n >= sizeof(s->path)) n = sizeof(s->path) - 1;
        memcpy(s->path, p, n);
        s->anchor = -1;
        pthread_mutex_init(&s->lock, NULL);
        strcpy(s->label, "hsmlab");
      }
      if (end == NULL) break;
      p = end + 1;
    }
  }
  const char *t = getenv("HSMLAB_PKCS11_TIMEOUT_MS");
  g_timeout_ms = TIMEOUT_MS_DEFAULT;
  if (t != NULL && atoi(t) > 0) g_timeout_ms = atoi(t);
  if (getrandom(g_app, sizeof(g_app), 0) != (ssize_t)sizeof(g_app)) { pthread_mutex_unlock(&g_lock); return CKR_FUNCTION_FAILED; }
  if (!g_atfork_registered) { pthread_atfork(NULL, NULL, atfork_child); g_atfork_registered = 1; }
  g_initialized = 1;
  pthread_mutex_unlock(&g_lock);
  return CKR_OK;
}

EXPORT CK_RV C_Finalize (CK_VOID_PTR pReserved) {
  if (pReserved != NULL) return CKR_ARGUMENTS_BAD;
  pthread_mutex_lock(&g_lock);
  if (!g_initialized) { pthread_mutex_unlock(&g_lock); return CKR_CRYPTOKI_NOT_INITIALIZED; }
  session_t *se = g_sessions;
  while (se != NULL) {
    session_t *next = se->next;
    op_clear(&se->crypt);
    op_clear(&se->digest);
    free(se->found);
    free(se);
    se = next;
  }
  g_sessions = NULL;
  /* Closing every socket ends the application in the daemon: its login and session objects go. */
  for (int i = 0; i < g_slot_count; i++) {
    slot_t *s = &g_slots[i];
    pthread_mutex_lock(&s->lock);
    for (int k = 0; k < s->pooled; k++) close(s->pool[k]);
    s->pooled = 0;
    if (s->anchor >= 0) close(s->anchor);
    s->anchor = -1;
    s->logged_in = 0;
    pthread_mutex_unlock(&s->lock);
  }
  g_initialized = 0;
  pthread_mutex_unlock(&g_lock);
  return CKR_OK;
}

EXPORT CK_RV C_GetInfo (CK_INFO_PTR pInfo) {
  CK_RV rv = check_init();
  if (rv != CKR_OK) return rv;
  if (pInfo == NULL) return CKR_ARGUMENTS_BAD;
  memset(pInfo, 0, sizeof(*pInfo));
  pInfo->cryptokiVersion.major = 2;
  pInfo->cryptokiVersion.minor = 40;
  pad(pInfo->manufacturerID, sizeof(pInfo->manufacturerID), "hsmlab");
  pad(pInfo->libraryDescription, sizeof(pInfo->libraryDescription), "hsmlab PKCS#11 library");
  pInfo->libraryVersion.major = 0;
  pInfo->libraryVersion.minor = 1;
  return CKR_OK;
}

EXPORT CK_RV C_GetFunctionList (CK_FUNCTION_LIST_PTR_PTR ppFunctionList) {
  if (ppFunctionList == NULL) return CKR_ARGUMENTS_BAD;
  *ppFunctionList = &function_list;
  return CKR_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Slots and tokens */

EXPORT CK_RV C_GetSlotList (CK_BBOOL tokenPresent, CK_SLOT_ID_PTR pSlotList, CK_ULONG_PTR pulCount) {
  (void)tokenPresent;
  CK_RV rv = check_init();
  if (rv != CKR_OK) return rv;
  if (pulCount == NULL) return CKR_ARGUMENTS_BAD;
  CK_ULONG n = (CK_ULONG)g_slot_count;
  if (pSlotList == NULL) { *pulCount = n; return CKR_OK; }
  if (*pulCount < n) { *pulCount = n; return CKR_BUFFER_TOO_SMALL; }
  for (CK_ULONG i = 0; i < n; i++) pSlotList[i] = i;
  *pulCount = n;
  return CKR_OK;
}

EXPORT CK_RV C_GetSlotInfo (CK_SLOT_ID slotID, CK_SLOT_INFO_PTR pInfo) {
  CK_RV rv = check_init();
  if (rv != CKR_OK) return rv;
  if (slotID >= (CK_SLOT_ID)g_slot_count) return CKR_SLOT_ID_INVALID;
  if (pInfo == NULL) return CKR_ARGUMENTS_BAD;
  memset(pInfo, 0, sizeof(*pInfo));
  char d[96];
  snprintf(d, sizeof(d), "hsmlab client daemon %s", g_slots[slotID].path);
  pad(pInfo->slotDescription, sizeof(pInfo->slotDescription), d);
  pad(pInfo->manufacturerID, sizeof(pInfo->manufacturerID), "hsmlab");
  pInfo->flags = CKF_TOKEN_PRESENT | CKF_HW_SLOT;
  pInfo->hardwareVersion.major = 1;
  pInfo->firmwareVersion.major = 1;
  return CKR_OK;
}

EXPORT CK_RV C_GetTokenInfo (CK_SLOT_ID slotID, CK_TOKEN_INFO_PTR pInfo) {
  CK_RV rv = check_init();
  if (rv != CKR_OK) return rv;
  if (slotID >= (CK_SLOT_ID)g_slot_count) return CKR_SLOT_ID_INVALID;
  if (pInfo == NULL) return CKR_ARGUMENTS_BAD;
  slot_t *s = &g_slots[slotID];
  /* Asks the daemon (PING), which also fills the token's label and serial on a first socket. */
  buf_t b = {0};
  resp_t r;
  rv = rpc(slotID, OP_PING, &b, &r);
  resp_free(&r);
  free(b.p);
  if (rv != CKR_OK) return rv;
  memset(pInfo, 0, sizeof(*pInfo));
  pthread_mutex_lock(&s->lock);
  pad(pInfo->label, sizeof(pInfo->label), s->label);
  pad(pInfo->serialNumber, sizeof(pInfo->serialNumber), s->serial);
  pad(pInfo->model, sizeof(pInfo->model), s->model);
  pthread_mutex_unlock(&s->lock);
  pad(pInfo->manufacturerID, sizeof(pInfo->manufacturerID), "hsmlab");
  pInfo->flags = CKF_RNG | CKF_LOGIN_REQUIRED | CKF_USER_PIN_INITIALIZED | CKF_TOKEN_INITIALIZED;
  pInfo->ulMaxSessionCount = CK_EFFECTIVELY_INFINITE;
  pInfo->ulSessionCount = CK_UNAVAILABLE_INFORMATION;
  pInfo->ulMaxRwSessionCount = CK_EFFECTIVELY_INFINITE;
  pInfo->ulRwSessionCount = CK_UNAVAILABLE_INFORMATION;
  pInfo->ulMaxPinLen = 288;
  pInfo->ulMinPinLen = 3;
  pInfo->ulTotalPublicMemory = CK_UNAVAILABLE_INFORMATION;
  pInfo->ulFreePublicMemory = CK_UNAVAILABLE_INFORMATION;
  pInfo->ulTotalPrivateMemory = CK_UNAVAILABLE_INFORMATION;
  pInfo->ulFreePrivateMemory = CK_UNAVAILABLE_INFORMATION;
  pInfo->hardwareVersion.major = 1;
  pInfo->firmwareVersion.major = 1;
  return CKR_OK;
}

typedef struct { CK_MECHANISM_TYPE type; CK_ULONG min, max; CK_FLAGS flags; } mech_t;

static const mech_t MECHANISMS[] = {
  { CKM_AES_KEY_GEN, 16, 32, CKF_GENERATE },
  { CKM_GENERIC_SECRET_KEY_GEN, 1, 800, CKF_GENERATE },
  { CKM_RSA_PKCS_KEY_PAIR_GEN, 2048, 4096, CKF_GENERATE_KEY_PAIR },
  { CKM_EC_KEY_PAIR_GEN, 256, 384, CKF_GENERATE_KEY_PAIR | CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS },
  { CKM_AES_ECB, 16, 32, CKF_ENCRYPT | CKF_DECRYPT },
  { CKM_AES_CBC, 16, 32, CKF_ENCRYPT | CKF_DECRYPT },
  { CKM_AES_CBC_PAD, 16, 32, CKF_ENCRYPT | CKF_DECRYPT },
  { CKM_AES_CTR, 16, 32, CKF_ENCRYPT | CKF_DECRYPT },
  { CKM_AES_GCM, 16, 32, CKF_ENCRYPT | CKF_DECRYPT },
  { CKM_AES_KEY_WRAP, 16, 32, CKF_WRAP | CKF_UNWRAP },
  { CKM_AES_KEY_WRAP_PAD, 16, 32, CKF_WRAP | CKF_UNWRAP },
  { CKM_RSA_PKCS_OAEP, 2048, 4096, CKF_ENCRYPT | CKF_DECRYPT | CKF_WRAP | CKF_UNWRAP },
  { CKM_RSA_PKCS, 2048, 4096, CKF_ENCRYPT | CKF_DECRYPT | CKF_SIGN | CKF_VERIFY },
  { CKM_SHA1_RSA_PKCS, 2048, 4096, CKF_SIGN | CKF_VERIFY },
  { CKM_SHA224_RSA_PKCS, 2048, 4096, CKF_SIGN | CKF_VERIFY },
  { CKM_SHA256_RSA_PKCS, 2048, 4096, CKF_SIGN | CKF_VERIFY },
  { CKM_SHA384_RSA_PKCS, 2048, 4096, CKF_SIGN | CKF_VERIFY },
  { CKM_SHA512_RSA_PKCS, 2048, 4096, CKF_SIGN | CKF_VERIFY },
  { CKM_RSA_PKCS_PSS, 2048, 4096, CKF_SIGN | CKF_VERIFY },
  { CKM_SHA1_RSA_PKCS_PSS, 2048, 4096, CKF_SIGN | CKF_VERIFY },
  { CKM_SHA224_RSA_PKCS_PSS, 2048, 4096, CKF_SIGN | CKF_VERIFY },
  { CKM_SHA256_RSA_PKCS_PSS, 2048, 4096, CKF_SIGN | CKF_VERIFY },
  { CKM_SHA384_RSA_PKCS_PSS, 2048, 4096, CKF_SIGN | CKF_VERIFY },
  { CKM_SHA512_RSA_PKCS_PSS, 2048, 4096, CKF_SIGN | CKF_VERIFY },
  { CKM_ECDSA, 256, 384, CKF_SIGN | CKF_VERIFY | CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS },
  { CKM_ECDSA_SHA1, 256, 384, CKF_SIGN | CKF_VERIFY | CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS },
  { CKM_ECDSA_SHA224, 256, 384, CKF_SIGN | CKF_VERIFY | CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS },
  { CKM_ECDSA_SHA256, 256, 384, CKF_SIGN | CKF_VERIFY | CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS },
  { CKM_ECDSA_SHA384, 256, 384, CKF_SIGN | CKF_VERIFY | CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS },
  { CKM_ECDSA_SHA512, 256, 384, CKF_SIGN | CKF_VERIFY | CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS },
  { CKM_SHA_1_HMAC, 1, 800, CKF_SIGN | CKF_VERIFY },
  { CKM_SHA224_HMAC, 1, 800, CKF_SIGN | CKF_VERIFY },
  { CKM_SHA256_HMAC, 1, 800, CKF_SIGN | CKF_VERIFY },
  { CKM_SHA384_HMAC, 1, 800, CKF_SIGN | CKF_VERIFY },
  { CKM_SHA512_HMAC, 1, 800, CKF_SIGN | CKF_VERIFY },
  { CKM_SHA_1, 0, 0, CKF_DIGEST },
  { CKM_SHA224, 0, 0, CKF_DIGEST },
  { CKM_SHA256, 0, 0, CKF_DIGEST },
  { CKM_SHA384, 0, 0, CKF_DIGEST },
  { CKM_SHA512, 0, 0, CKF_DIGEST }
};
#define MECHANISM_COUNT (sizeof(MECHANISMS) / sizeof(MECHANISMS[0]))

static const mech_t *mechanism_of (CK_MECHANISM_TYPE type) {
  for (size_t i = 0; i < MECHANISM_COUNT; i++) if (MECHANISMS[i].type == type) return &MECHANISMS[i];
  return NULL;
}

EXPORT CK_RV C_GetMechanismList (CK_SLOT_ID slotID, CK_MECHANISM_TYPE_PTR pMechanismList, CK_ULONG_PTR pulCount) {
  CK_RV rv = check_init();
  if (rv != CKR_OK) return rv;
  if (slotID >= (CK_SLOT_ID)g_slot_count) return CKR_SLOT_ID_INVALID;
  if (pulCount == NULL) return CKR_ARGUMENTS_BAD;
  if (pMechanismList == NULL) { *pulCount = MECHANISM_COUNT; return CKR_OK; }
  if (*pulCount < MECHANISM_COUNT) { *pulCount = MECHANISM_COUNT; return CKR_BUFFER_TOO_SMALL; }
  for (size_t i = 0; i < MECHANISM_COUNT; i++) pMechanismList[i] = MECHANISMS[i].type;
  *pulCount = MECHANISM_COUNT;
  return CKR_OK;
}

EXPORT CK_RV C_GetMechanismInfo (CK_SLOT_ID slotID, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR pInfo) {
  CK_RV rv = check_init();
  if (rv != CKR_OK) return rv;
  if (slotID >= (CK_SLOT_ID)g_slot_count) return CKR_SLOT_ID_INVALID;
  if (pInfo == NULL) return CKR_ARGUMENTS_BAD;
  const mech_t *m = mechanism_of(type);
  if (m == NULL) return CKR_MECHANISM_INVALID;
  pInfo->ulMinKeySize = m->min;
  pInfo->ulMaxKeySize = m->max;
  pInfo->flags = m->flags | CKF_HW;
  return CKR_OK;
}

EXPORT CK_RV C_InitToken (CK_SLOT_ID a, CK_UTF8CHAR_PTR b, CK_ULONG c, CK_UTF8CHAR_PTR d) { (void)a; (void)b; (void)c; (void)d; return CKR_FUNCTION_NOT_SUPPORTED; }
EXPORT CK_RV C_InitPIN (CK_SESSION_HANDLE a, CK_UTF8CHAR_PTR b, CK_ULONG c) { (void)a; (void)b; (void)c; return CKR_FUNCTION_NOT_SUPPORTED; }
EXPORT CK_RV C_SetPIN (CK_SESSION_HANDLE a, CK_UTF8CHAR_PTR b, CK_ULONG c, CK_UTF8CHAR_PTR d, CK_ULONG e) { (void)a; (void)b; (void)c; (void)d; (void)e; return CKR_FUNCTION_NOT_SUPPORTED; }

/* ------------------------------------------------------------------------------------------ */
/* Sessions and login */

EXPORT CK_RV C_OpenSession (CK_SLOT_ID slotID, CK_FLAGS flags, CK_VOID_PTR pApplication, CK_NOTIFY Notify, CK_SESSION_HANDLE_PTR phSession) {
  (void)pApplication; (void)Notify;
  CK_RV rv = check_init();
  if (rv != CKR_OK) return rv;
  if (slotID >= (CK_SLOT_ID)g_slot_count) return CKR_SLOT_ID_INVALID;
  if (!(flags & CKF_SERIAL_SESSION)) return CKR_SESSION_PARALLEL_NOT_SUPPORTED;
  if (phSession == NULL) return CKR_ARGUMENTS_BAD;
  session_t *s = calloc(1, sizeof(*s));
  if (s == NULL) return CKR_HOST_MEMORY;
  s->slot = slotID;
  s->flags = flags;
  pthread_mutex_lock(&g_lock);
  s->handle = g_next_session++;
  s->next = g_sessions;
  g_sessions = s;
  pthread_mutex_unlock(&g_lock);
  *phSession = s->handle;
  return CKR_OK;
}

static void session_free (session_t *s) {
  op_clear(&s->crypt);
  op_clear(&s->digest);
  free(s->found);
  free(s);
}

/* Unlinks a session; NULL when there is none. */
static session_t *session_take (CK_SESSION_HANDLE h) {
  pthread_mutex_lock(&g_lock);
  session_t **p = &g_sessions;
  while (*p != NULL && (*p)->handle != h) p = &(*p)->next;
  session_t *s = *p;
  if (s != NULL) *p = s->next;
  pthread_mutex_unlock(&g_lock);
  return s;
}

static int slot_logged_in (CK_SLOT_ID slot) {
  slot_t *s = &g_slots[slot];
  pthread_mutex_lock(&s->lock);
  int v = s->logged_in;
  pthread_mutex_unlock(&s->lock);
  return v;
}

EXPORT CK_RV C_CloseSession (CK_SESSION_HANDLE hSession) {
  CK_RV rv = check_init();
  if (rv != CKR_OK) return rv;
  session_t *s = session_take(hSession);
  if (s == NULL) return CKR_SESSION_HANDLE_INVALID;
  if (slot_logged_in(s->slot)) {
    /* The session's objects die with it. */
    buf_t b = {0};
    resp_t r;
    field_u64(&b, TAG_SESSION, s->handle);
    rpc(s->slot, OP_CLOSE_SESSION, &b, &r);
    resp_free(&r);
    free(b.p);
  }
  session_free(s);
  return CKR_OK;
}

EXPORT CK_RV C_CloseAllSessions (CK_SLOT_ID slotID) {
  CK_RV rv = check_init();
  if (rv != CKR_OK) return rv;
  if (slotID >= (CK_SLOT_ID)g_slot_count) return CKR_SLOT_ID_INVALID;
  for (;;) {
    pthread_mutex_lock(&g_lock);
    session_t *s = g_sessions;
    while (s != NULL && s->slot != slotID) s = s->next;
    CK_SESSION_HANDLE h = s == NULL ? 0 : s->handle;
    pthread_mutex_unlock(&g_lock);
    if (s == NULL) break;
    C_CloseSession(h);
  }
  return CKR_OK;
}

EXPORT CK_RV C_GetSessionInfo (CK_SESSION_HANDLE hSession, CK_SESSION_INFO_PTR pInfo) {
  SESSION(s, hSession)
  if (pInfo == NULL) return CKR_ARGUMENTS_BAD;
  int rw = (s->flags & CKF_RW_SESSION) != 0;
  int user = slot_logged_in(s->slot);
  pInfo->slotID = s->slot;
  pInfo->flags = s->flags;
  pInfo->ulDeviceError = 0;
  pInfo->state = user ? (rw ? CKS_RW_USER_FUNCTIONS : CKS_RO_USER_FUNCTIONS) : (rw ? CKS_RW_PUBLIC_SESSION : CKS_RO_PUBLIC_SESSION);
  return CKR_OK;
}

EXPORT CK_RV C_GetOperationState (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG_PTR c) { (void)a; (void)b; (void)c; return CKR_FUNCTION_NOT_SUPPORTED; }
EXPORT CK_RV C_SetOperationState (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_OBJECT_HANDLE d, CK_OBJECT_HANDLE e) { (void)a; (void)b; (void)c; (void)d; (void)e; return CKR_FUNCTION_NOT_SUPPORTED; }

EXPORT CK_RV C_Login (CK_SESSION_HANDLE hSession, CK_USER_TYPE userType, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen) {
  SESSION(s, hSession)
  if (userType == CKU_SO) return CKR_USER_TYPE_INVALID; /* COs manage users with CMU, not PKCS#11 (as CloudHSM). */
  if (userType != CKU_USER) return CKR_USER_TYPE_INVALID;
  if (pPin == NULL) return CKR_ARGUMENTS_BAD;
  if (slot_logged_in(s->slot)) return CKR_USER_ALREADY_LOGGED_IN;
  buf_t b = {0};
  resp_t r;
  field(&b, TAG_PIN, pPin, ulPinLen);
  CK_RV rv = rpc(s->slot, OP_LOGIN, &b, &r);
  resp_free(&r);
  free(b.p);
  if (rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN) {
    slot_t *sl = &g_slots[s->slot];
    pthread_mutex_lock(&sl->lock);
    sl->logged_in = 1;
    pthread_mutex_unlock(&sl->lock);
  }
  return rv;
}

EXPORT CK_RV C_Logout (CK_SESSION_HANDLE hSession) {
  SESSION(s, hSession)
  if (!slot_logged_in(s->slot)) return CKR_USER_NOT_LOGGED_IN;
  buf_t b = {0};
  resp_t r;
  CK_RV rv = rpc(s->slot, OP_LOGOUT, &b, &r);
  resp_free(&r);
  slot_t *sl = &g_slots[s->slot];
  pthread_mutex_lock(&sl->lock);
  sl->logged_in = 0;
  pthread_mutex_unlock(&sl->lock);
  return rv == CKR_USER_NOT_LOGGED_IN ? CKR_OK : rv;
}

/* ------------------------------------------------------------------------------------------ */
/* Objects */

EXPORT CK_RV C_CopyObject (CK_SESSION_HANDLE a, CK_OBJECT_HANDLE b, CK_ATTRIBUTE_PTR c, CK_ULONG d, CK_OBJECT_HANDLE_PTR e) { (void)a; (void)b; (void)c; (void)d; (void)e; return CKR_FUNCTION_NOT_SUPPORTED; }

EXPORT CK_RV C_DestroyObject (CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject) {
  SESSION(s, hSession)
  buf_t b = {0};
  resp_t r;
  field_u64(&b, TAG_HANDLE, hObject);
  CK_RV rv = rpc(s->slot, OP_DESTROY, &b, &r);
  resp_free(&r);
  free(b.p);
  return rv;
}

EXPORT CK_RV C_GetObjectSize (CK_SESSION_HANDLE a, CK_OBJECT_HANDLE b, CK_ULONG_PTR c) { (void)a; (void)b; (void)c; return CKR_FUNCTION_NOT_SUPPORTED; }

EXPORT CK_RV C_GetAttributeValue (CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount) {
  SESSION(s, hSession)
  if (pTemplate == NULL && ulCount > 0) return CKR_ARGUMENTS_BAD;
  buf_t b = {0};
  resp_t r;
  field_u64(&b, TAG_HANDLE, hObject);
  for (CK_ULONG i = 0; i < ulCount; i++) field_u64(&b, TAG_ATTR_TYPE, pTemplate[i].type);
  CK_RV rv = rpc(s->slot, OP_GET_ATTRS, &b, &r);
  free(b.p);
  if (rv != CKR_OK) { resp_free(&r); return rv; }
  CK_RV result = CKR_OK;
  for (CK_ULONG i = 0; i < ulCount; i++) {
    CK_ATTRIBUTE *a = &pTemplate[i];
    int found = 0;
    size_t n = 0;
    const uint8_t *v;
    for (int k = 0; (v = resp_field(&r, TAG_ATTR, k, &n)) != NULL; k++) {
      if (n >= 8 && get_be(v, 8) == a->type) {
        size_t len = n - 8;
        found = 1;
        if (a->pValue == NULL) a->ulValueLen = len;
        else if (a->ulValueLen < len) { a->ulValueLen = CK_UNAVAILABLE_INFORMATION; result = CKR_BUFFER_TOO_SMALL; }
        else { memcpy(a->pValue, v + 8, len); a->ulValueLen = len; }
        break;
      }
    }
    if (found) continue;
    a->ulValueLen = CK_UNAVAILABLE_INFORMATION;
    int sensitive = 0;
    for (int k = 0; ; k++) {
      int f = 0;
      uint64_t t = resp_u64(&r, TAG_ATTR_SENSITIVE, k, &f);
      if (!f) break;
      if (t == a->type) { sensitive = 1; break; }
    }
    if (result == CKR_OK) result = sensitive ? CKR_ATTRIBUTE_SENSITIVE : CKR_ATTRIBUTE_TYPE_INVALID;
  }
  resp_free(&r);
  return result;
}

EXPORT CK_RV C_SetAttributeValue (CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount) {
  SESSION(s, hSession)
  if (pTemplate == NULL && ulCount > 0) return CKR_ARGUMENTS_BAD;
  buf_t b = {0};
  resp_t r;
  field_u64(&b, TAG_HANDLE, hObject);
  field_template(&b, TAG_ATTR, pTemplate, ulCount);
  CK_RV rv = rpc(s->slot, OP_SET_ATTRS, &b, &r);
  resp_free(&r);
  free(b.p);
  return rv;
}

EXPORT CK_RV C_FindObjectsInit (CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount) {
  SESSION(s, hSession)
  if (pTemplate == NULL && ulCount > 0) return CKR_ARGUMENTS_BAD;
  if (s->finding) return CKR_OPERATION_ACTIVE;
  free(s->found);
  s->found = NULL;
  s->found_count = s->found_pos = 0;
  /* Every object is private to its CU: before login a search finds nothing, as PKCS#11 allows. */
  if (!slot_logged_in(s->slot)) { s->finding = 1; return CKR_OK; }
  buf_t b = {0};
  resp_t r;
  field_u64(&b, TAG_SESSION, s->handle);
  field_template(&b, TAG_ATTR, pTemplate, ulCount);
  CK_RV rv = rpc(s->slot, OP_FIND, &b, &r);
  free(b.p);
  if (rv == CKR_USER_NOT_LOGGED_IN) { resp_free(&r); s->finding = 1; return CKR_OK; }
  if (rv != CKR_OK) { resp_free(&r); return rv; }
  CK_ULONG n = 0;
  for (;; n++) { int f = 0; resp_u64(&r, TAG_HANDLE, (int)n, &f); if (!f) break; }
  s->found = calloc(n == 0 ? 1 : n, sizeof(CK_OBJECT_HANDLE));
  if (s->found == NULL) { resp_free(&r); return CKR_HOST_MEMORY; }
  for (CK_ULONG i = 0; i < n; i++) s->found[i] = (CK_OBJECT_HANDLE)resp_u64(&r, TAG_HANDLE, (int)i, NULL);
  s->found_count = n;
  s->finding = 1;
  resp_free(&r);
  return CKR_OK;
}

EXPORT CK_RV C_FindObjects (CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE_PTR phObject, CK_ULONG ulMaxObjectCount, CK_ULONG_PTR pulObjectCount) {
  SESSION(s, hSession)
  if (!s->finding) return CKR_OPERATION_NOT_INITIALIZED;
  if (phObject == NULL || pulObjectCount == NULL) return CKR_ARGUMENTS_BAD;
  CK_ULONG n = 0;
  while (n < ulMaxObjectCount && s->found_pos < s->found_count) phObject[n++] = s->found[s->found_pos++];
  *pulObjectCount = n;
  return CKR_OK;
}

EXPORT CK_RV C_FindObjectsFinal (CK_SESSION_HANDLE hSession) {
  SESSION(s, hSession)
  if (!s->finding) return CKR_OPERATION_NOT_INITIALIZED;
  free(s->found);
  s->found = NULL;
  s->found_count = s->found_pos = 0;
  s->finding = 0;
  return CKR_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Crypto operations */

/* Encodes a mechanism's parameters as fields; CKR_MECHANISM_PARAM_INVALID when they are malformed. */
static CK_RV encode_params (CK_MECHANISM_PTR m, buf_t *b) {
  switch (m->mechanism) {
    case CKM_AES_CBC: case CKM_AES_CBC_PAD:
      if (m->pParameter == NULL || m->ulParameterLen != 16) return CKR_MECHANISM_PARAM_INVALID;
      field(b, TAG_IV, m->pParameter, 16);
      break;
    case CKM_AES_CTR: {
      if (m->pParameter == NULL || m->ulParameterLen != sizeof(CK_AES_CTR_PARAMS)) return CKR_MECHANISM_PARAM_INVALID;
      CK_AES_CTR_PARAMS *p = m->pParameter;
      field(b, TAG_IV, p->cb, 16);
      break;
    }
    case CKM_AES_GCM: {
      /* PKCS#11 v2.40's header first had no ulIvBits (errata); some applications still pass that layout. */
      struct gcm_without_iv_bits { CK_BYTE_PTR pIv; CK_ULONG ulIvLen; CK_BYTE_PTR pAAD; CK_ULONG ulAADLen; CK_ULONG ulTagBits; };
      if (m->pParameter != NULL && m->ulParameterLen == sizeof(struct gcm_without_iv_bits) && sizeof(struct gcm_without_iv_bits) != sizeof(CK_GCM_PARAMS)) {
        struct gcm_without_iv_bits *p = m->pParameter;
        if (p->pIv == NULL || p->ulIvLen == 0) return CKR_MECHANISM_PARAM_INVALID;
        field(b, TAG_IV, p->pIv, p->ulIvLen);
        if (p->pAAD != NULL && p->ulAADLen > 0) field(b, TAG_AAD, p->pAAD, p->ulAADLen);
        field_u64(b, TAG_TAG_BITS, p->ulTagBits == 0 ? 128 : p->ulTagBits);
        break;
      }
      if (m->pParameter == NULL || m->ulParameterLen != sizeof(CK_GCM_PARAMS)) return CKR_MECHANISM_PARAM_INVALID;
      CK_GCM_PARAMS *p = m->pParameter;
      if (p->pIv == NULL || p->ulIvLen == 0) return CKR_MECHANISM_PARAM_INVALID;
      field(b, TAG_IV, p->pIv, p->ulIvLen);
      if (p->pAAD != NULL && p->ulAADLen > 0) field(b, TAG_AAD, p->pAAD, p->ulAADLen);
      field_u64(b, TAG_TAG_BITS, p->ulTagBits == 0 ? 128 : p->ulTagBits);
      break;
    }
    case CKM_RSA_PKCS_OAEP: {
      if (m->pParameter == NULL || m->ulParameterLen != sizeof(CK_RSA_PKCS_OAEP_PARAMS)) return CKR_MECHANISM_PARAM_INVALID;
      CK_RSA_PKCS_OAEP_PARAMS *p = m->pParameter;
      field_u64(b, TAG_HASH_MECHANISM, p->hashAlg);
      if (p->source == CKZ_DATA_SPECIFIED && p->pSourceData != NULL && p->ulSourceDataLen > 0) field(b, TAG_OAEP_LABEL, p->pSourceData, p->ulSourceDataLen);
      break;
    }
    case CKM_RSA_PKCS_PSS: case CKM_SHA1_RSA_PKCS_PSS: case CKM_SHA224_RSA_PKCS_PSS: case CKM_SHA256_RSA_PKCS_PSS:
    case CKM_SHA384_RSA_PKCS_PSS: case CKM_SHA512_RSA_PKCS_PSS: {
      if (m->pParameter == NULL || m->ulParameterLen != sizeof(CK_RSA_PKCS_PSS_PARAMS)) {
        if (m->mechanism == CKM_RSA_PKCS_PSS) return CKR_MECHANISM_PARAM_INVALID;
        break;
      }
      CK_RSA_PKCS_PSS_PARAMS *p = m->pParameter;
      field_u64(b, TAG_HASH_MECHANISM, p->hashAlg);
      field_u64(b, TAG_SALT_BYTES, p->sLen);
      break;
    }
    default: break;
  }
  return b->failed ? CKR_HOST_MEMORY : CKR_OK;
}

static CK_RV op_init (session_t *s, op_t *op, int kind, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE key, CK_FLAGS needed) {
  if (m == NULL) return CKR_ARGUMENTS_BAD;
  if (op->kind != OPK_NONE) return CKR_OPERATION_ACTIVE;
  const mech_t *info = mechanism_of(m->mechanism);
  if (info == NULL || !(info->flags & needed)) return CKR_MECHANISM_INVALID;
  if (kind != OPK_DIGEST && !slot_logged_in(s->slot)) return CKR_USER_NOT_LOGGED_IN;
  memset(op, 0, sizeof(*op));
  CK_RV rv = encode_params(m, &op->params);
  if (rv != CKR_OK) { op_clear(op); return rv; }
  op->kind = kind;
  op->mechanism = m->mechanism;
  op->key = key;
  return CKR_OK;
}

static CK_RV op_gather (op_t *op, int kind, CK_BYTE_PTR part, CK_ULONG len) {
  if (op->kind != kind) return CKR_OPERATION_NOT_INITIALIZED;
  if (part == NULL && len > 0) return CKR_ARGUMENTS_BAD;
  if (op->input.len + len > MULTIPART_BYTES_MAX) { op_clear(op); return CKR_DATA_LEN_RANGE; }
  buf_put(&op->input, part, len);
  if (op->input.failed) { op_clear(op); return CKR_HOST_MEMORY; }
  return CKR_OK;
}

/*
 * Runs the operation on `data` (or the gathered input) unless a size query already did, and
 * hands out its result as PKCS#11 asks: NULL output → the length, the operation stays active;
 * too small → CKR_BUFFER_TOO_SMALL, stays active; else the result, and the operation ends. Any
 * other failure ends it.
 */
static CK_RV op_finish (session_t *s, op_t *op, int kind, int daemon_op, int result_tag, const uint8_t *data, size_t data_len,
                        CK_BYTE_PTR out, CK_ULONG_PTR out_len) {
  if (op->kind != kind) return CKR_OPERATION_NOT_INITIALIZED;
  if (out_len == NULL) { op_clear(op); return CKR_ARGUMENTS_BAD; }
  if (!op->have_result) {
    buf_t b = {0};
    resp_t r;
    if (kind != OPK_DIGEST) field_u64(&b, TAG_HANDLE, op->key);
    field_u64(&b, TAG_MECHANISM, op->mechanism);
    field_u64(&b, TAG_SESSION, s->handle);
    buf_put(&b, op->params.p, op->params.len);
    field(&b, TAG_DATA, data != NULL ? data : op->input.p, data != NULL ? data_len : op->input.len);
    CK_RV rv = rpc(s->slot, daemon_op, &b, &r);
    free(b.p);
    if (rv != CKR_OK) { resp_free(&r); op_clear(op); return rv; }
    size_t n = 0;
    const uint8_t *v = resp_field(&r, result_tag, 0, &n);
    op->result = malloc(n == 0 ? 1 : n);
    if (op->result == NULL) { resp_free(&r); op_clear(op); return CKR_HOST_MEMORY; }
    if (n > 0) memcpy(op->result, v, n);
    op->result_len = n;
    op->have_result = 1;
    resp_free(&r);
  }
  if (out == NULL) { *out_len = op->result_len; return CKR_OK; }
  if (*out_len < op->result_len) { *out_len = op->result_len; return CKR_BUFFER_TOO_SMALL; }
  memcpy(out, op->result, op->result_len);
  *out_len = op->result_len;
  op_clear(op);
  return CKR_OK;
}

EXPORT CK_RV C_EncryptInit (CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE key) {
  SESSION(s, h)
  return op_init(s, &s->crypt, OPK_ENCRYPT, m, key, CKF_ENCRYPT);
}
EXPORT CK_RV C_Encrypt (CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR out, CK_ULONG_PTR out_len) {
  SESSION(s, h)
  if (s->crypt.kind == OPK_ENCRYPT && data == NULL && len > 0) { op_clear(&s->crypt); return CKR_ARGUMENTS_BAD; }
  return op_finish(s, &s->crypt, OPK_ENCRYPT, OP_ENCRYPT, TAG_DATA, data == NULL ? (const uint8_t *)"" : data, len, out, out_len);
}
EXPORT CK_RV C_EncryptUpdate (CK_SESSION_HANDLE h, CK_BYTE_PTR part, CK_ULONG len, CK_BYTE_PTR out, CK_ULONG_PTR out_len) {
  SESSION(s, h)
  (void)out;
  if (out_len == NULL) return CKR_ARGUMENTS_BAD;
  CK_RV rv = op_gather(&s->crypt, OPK_ENCRYPT, part, len);
  if (rv == CKR_OK) *out_len = 0;
  return rv;
}
EXPORT CK_RV C_EncryptFinal (CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG_PTR out_len) {
  SESSION(s, h)
  return op_finish(s, &s->crypt, OPK_ENCRYPT, OP_ENCRYPT, TAG_DATA, NULL, 0, out, out_len);
}

EXPORT CK_RV C_DecryptInit (CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE key) {
  SESSION(s, h)
  return op_init(s, &s->crypt, OPK_DECRYPT, m, key, CKF_DECRYPT);
}
EXPORT CK_RV C_Decrypt (CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR out, CK_ULONG_PTR out_len) {
  SESSION(s, h)
  if (s->crypt.kind == OPK_DECRYPT && data == NULL && len > 0) { op_clear(&s->crypt); return CKR_ARGUMENTS_BAD; }
  return op_finish(s, &s->crypt, OPK_DECRYPT, OP_DECRYPT, TAG_DATA, data == NULL ? (const uint8_t *)"" : data, len, out, out_len);
}
EXPORT CK_RV C_DecryptUpdate (CK_SESSION_HANDLE h, CK_BYTE_PTR part, CK_ULONG len, CK_BYTE_PTR out, CK_ULONG_PTR out_len) {
  SESSION(s, h)
  (void)out;
  if (out_len == NULL) return CKR_ARGUMENTS_BAD;
  CK_RV rv = op_gather(&s->crypt, OPK_DECRYPT, part, len);
  if (rv == CKR_OK) *out_len = 0;
  return rv;
}
EXPORT CK_RV C_DecryptFinal (CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG_PTR out_len) {
  SESSION(s, h)
  return op_finish(s, &s->crypt, OPK_DECRYPT, OP_DECRYPT, TAG_DATA, NULL, 0, out, out_len);
}

EXPORT CK_RV C_DigestInit (CK_SESSION_HANDLE h, CK_MECHANISM_PTR m) {
  SESSION(s, h)
  return op_init(s, &s->digest, OPK_DIGEST, m, 0, CKF_DIGEST);
}
EXPORT CK_RV C_Digest (CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR out, CK_ULONG_PTR out_len) {
  SESSION(s, h)
  return op_finish(s, &s->digest, OPK_DIGEST, OP_DIGEST, TAG_DATA, data == NULL ? (const uint8_t *)"" : data, len, out, out_len);
}
EXPORT CK_RV C_DigestUpdate (CK_SESSION_HANDLE h, CK_BYTE_PTR part, CK_ULONG len) {
  SESSION(s, h)
  return op_gather(&s->digest, OPK_DIGEST, part, len);
}
EXPORT CK_RV C_DigestKey (CK_SESSION_HANDLE h, CK_OBJECT_HANDLE k) { (void)h; (void)k; return CKR_FUNCTION_NOT_SUPPORTED; }
EXPORT CK_RV C_DigestFinal (CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG_PTR out_len) {
  SESSION(s, h)
  return op_finish(s, &s->digest, OPK_DIGEST, OP_DIGEST, TAG_DATA, NULL, 0, out, out_len);
}

EXPORT CK_RV C_SignInit (CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE key) {
  SESSION(s, h)
  return op_init(s, &s->crypt, OPK_SIGN, m, key, CKF_SIGN);
}
EXPORT CK_RV C_Sign (CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR out, CK_ULONG_PTR out_len) {
  SESSION(s, h)
  if (s->crypt.kind == OPK_SIGN && data == NULL && len > 0) { op_clear(&s->crypt); return CKR_ARGUMENTS_BAD; }
  return op_finish(s, &s->crypt, OPK_SIGN, OP_SIGN, TAG_SIGNATURE, data == NULL ? (const uint8_t *)"" : data, len, out, out_len);
}
EXPORT CK_RV C_SignUpdate (CK_SESSION_HANDLE h, CK_BYTE_PTR part, CK_ULONG len) {
  SESSION(s, h)
  return op_gather(&s->crypt, OPK_SIGN, part, len);
}
EXPORT CK_RV C_SignFinal (CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG_PTR out_len) {
  SESSION(s, h)
  return op_finish(s, &s->crypt, OPK_SIGN, OP_SIGN, TAG_SIGNATURE, NULL, 0, out, out_len);
}
EXPORT CK_RV C_SignRecoverInit (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c) { (void)a; (void)b; (void)c; return CKR_FUNCTION_NOT_SUPPORTED; }
EXPORT CK_RV C_SignRecover (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d, CK_ULONG_PTR e) { (void)a; (void)b; (void)c; (void)d; (void)e; return CKR_FUNCTION_NOT_SUPPORTED; }

static CK_RV verify_run (session_t *s, const uint8_t *data, size_t len, CK_BYTE_PTR sig, CK_ULONG sig_len) {
  op_t *op = &s->crypt;
  if (op->kind != OPK_VERIFY) return CKR_OPERATION_NOT_INITIALIZED;
  if (sig == NULL) { op_clear(op); return CKR_ARGUMENTS_BAD; }
  buf_t b = {0};
  resp_t r;
  field_u64(&b, TAG_HANDLE, op->key);
  field_u64(&b, TAG_MECHANISM, op->mechanism);
  field_u64(&b, TAG_SESSION, s->handle);
  buf_put(&b, op->params.p, op->params.len);
  field(&b, TAG_DATA, data != NULL ? data : op->input.p, data != NULL ? len : op->input.len);
  field(&b, TAG_SIGNATURE, sig, sig_len);
  CK_RV rv = rpc(s->slot, OP_VERIFY, &b, &r);
  free(b.p);
  resp_free(&r);
  op_clear(op);
  return rv;
}

EXPORT CK_RV C_VerifyInit (CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE key) {
  SESSION(s, h)
  return op_init(s, &s->crypt, OPK_VERIFY, m, key, CKF_VERIFY);
}
EXPORT CK_RV C_Verify (CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR sig, CK_ULONG sig_len) {
  SESSION(s, h)
  if (data == NULL && len > 0) { op_clear(&s->crypt); return CKR_ARGUMENTS_BAD; }
  return verify_run(s, data == NULL ? (const uint8_t *)"" : data, len, sig, sig_len);
}
EXPORT CK_RV C_VerifyUpdate (CK_SESSION_HANDLE h, CK_BYTE_PTR part, CK_ULONG len) {
  SESSION(s, h)
  return op_gather(&s->crypt, OPK_VERIFY, part, len);
}
EXPORT CK_RV C_VerifyFinal (CK_SESSION_HANDLE h, CK_BYTE_PTR sig, CK_ULONG sig_len) {
  SESSION(s, h)
  return verify_run(s, NULL, 0, sig, sig_len);
}
EXPORT CK_RV C_VerifyRecoverInit (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c) { (void)a; (void)b; (void)c; return CKR_FUNCTION_NOT_SUPPORTED; }
EXPORT CK_RV C_VerifyRecover (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d, CK_ULONG_PTR e) { (void)a; (void)b; (void)c; (void)d; (void)e; return CKR_FUNCTION_NOT_SUPPORTED; }
EXPORT CK_RV C_DigestEncryptUpdate (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d, CK_ULONG_PTR e) { (void)a; (void)b; (void)c; (void)d; (void)e; return CKR_FUNCTION_NOT_SUPPORTED; }
EXPORT CK_RV C_DecryptDigestUpdate (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d, CK_ULONG_PTR e) { (void)a; (void)b; (void)c; (void)d; (void)e; return CKR_FUNCTION_NOT_SUPPORTED; }
EXPORT CK_RV C_SignEncryptUpdate (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d, CK_ULONG_PTR e) { (void)a; (void)b; (void)c; (void)d; (void)e; return CKR_FUNCTION_NOT_SUPPORTED; }
EXPORT CK_RV C_DecryptVerifyUpdate (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d, CK_ULONG_PTR e) { (void)a; (void)b; (void)c; (void)d; (void)e; return CKR_FUNCTION_NOT_SUPPORTED; }

/* ------------------------------------------------------------------------------------------ */
/* Keys */

/* A token object needs a read-write session (PKCS#11 5.7: CKR_SESSION_READ_ONLY). */
static int wants_token (CK_ATTRIBUTE_PTR t, CK_ULONG n) {
  for (CK_ULONG i = 0; i < n; i++) {
    if (t[i].type == CKA_TOKEN && t[i].pValue != NULL && t[i].ulValueLen >= 1 && *(CK_BBOOL *)t[i].pValue) return 1;
  }
  return 0;
}

EXPORT CK_RV C_GenerateKey (CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_OBJECT_HANDLE_PTR phKey) {
  SESSION(s, h)
  if (m == NULL || phKey == NULL || (t == NULL && n > 0)) return CKR_ARGUMENTS_BAD;
  if (wants_token(t, n) && !(s->flags & CKF_RW_SESSION)) return CKR_SESSION_READ_ONLY;
  buf_t b = {0};
  resp_t r;
  field_u64(&b, TAG_SESSION, s->handle);
  field_u64(&b, TAG_MECHANISM, m->mechanism);
  field_template(&b, TAG_ATTR, t, n);
  CK_RV rv = rpc(s->slot, OP_GENERATE_KEY, &b, &r);
  free(b.p);
  if (rv == CKR_OK) *phKey = (CK_OBJECT_HANDLE)resp_u64(&r, TAG_HANDLE, 0, NULL);
  resp_free(&r);
  return rv;
}

/* Key import in clear (CloudHSM's library supports it): the daemon checks the template and has the HSM make the key. */
EXPORT CK_RV C_CreateObject (CK_SESSION_HANDLE h, CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_OBJECT_HANDLE_PTR phObject) {
  SESSION(s, h)
  if (phObject == NULL || (t == NULL && n > 0)) return CKR_ARGUMENTS_BAD;
  if (wants_token(t, n) && !(s->flags & CKF_RW_SESSION)) return CKR_SESSION_READ_ONLY;
  buf_t b = {0};
  resp_t r;
  field_u64(&b, TAG_SESSION, s->handle);
  field_template(&b, TAG_ATTR, t, n);
  CK_RV rv = rpc(s->slot, OP_CREATE_OBJECT, &b, &r);
  free(b.p);
  if (rv == CKR_OK) *phObject = (CK_OBJECT_HANDLE)resp_u64(&r, TAG_HANDLE, 0, NULL);
  resp_free(&r);
  return rv;
}

EXPORT CK_RV C_GenerateKeyPair (CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_ATTRIBUTE_PTR pub, CK_ULONG npub, CK_ATTRIBUTE_PTR priv, CK_ULONG npriv,
                                CK_OBJECT_HANDLE_PTR phPub, CK_OBJECT_HANDLE_PTR phPriv) {
  SESSION(s, h)
  if (m == NULL || phPub == NULL || phPriv == NULL || (pub == NULL && npub > 0) || (priv == NULL && npriv > 0)) return CKR_ARGUMENTS_BAD;
  if ((wants_token(pub, npub) || wants_token(priv, npriv)) && !(s->flags & CKF_RW_SESSION)) return CKR_SESSION_READ_ONLY;
  buf_t b = {0};
  resp_t r;
  field_u64(&b, TAG_SESSION, s->handle);
  field_u64(&b, TAG_MECHANISM, m->mechanism);
  field_template(&b, TAG_PUB_ATTR, pub, npub);
  field_template(&b, TAG_ATTR, priv, npriv);
  CK_RV rv = rpc(s->slot, OP_GENERATE_KEY_PAIR, &b, &r);
  free(b.p);
  if (rv == CKR_OK) {
    *phPub = (CK_OBJECT_HANDLE)resp_u64(&r, TAG_HANDLE, 0, NULL);
    *phPriv = (CK_OBJECT_HANDLE)resp_u64(&r, TAG_HANDLE2, 0, NULL);
  }
  resp_free(&r);
  return rv;
}

EXPORT CK_RV C_WrapKey (CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE wrapping, CK_OBJECT_HANDLE key, CK_BYTE_PTR out, CK_ULONG_PTR out_len) {
  SESSION(s, h)
  if (m == NULL || out_len == NULL) return CKR_ARGUMENTS_BAD;
  buf_t b = {0};
  resp_t r;
  field_u64(&b, TAG_SESSION, s->handle);
  field_u64(&b, TAG_MECHANISM, m->mechanism);
  field_u64(&b, TAG_HANDLE, key);
  field_u64(&b, TAG_HANDLE2, wrapping);
  CK_RV rv = rpc(s->slot, OP_WRAP, &b, &r);
  free(b.p);
  if (rv == CKR_OK) {
    size_t n = 0;
    const uint8_t *v = resp_field(&r, TAG_DATA, 0, &n);
    if (out == NULL) *out_len = n;
    else if (*out_len < n) { *out_len = n; rv = CKR_BUFFER_TOO_SMALL; }
    else { memcpy(out, v, n); *out_len = n; }
  }
  resp_free(&r);
  return rv;
}

EXPORT CK_RV C_UnwrapKey (CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE unwrapping, CK_BYTE_PTR wrapped, CK_ULONG wrapped_len,
                          CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_OBJECT_HANDLE_PTR phKey) {
  SESSION(s, h)
  if (m == NULL || wrapped == NULL || phKey == NULL || (t == NULL && n > 0)) return CKR_ARGUMENTS_BAD;
  if (wants_token(t, n) && !(s->flags & CKF_RW_SESSION)) return CKR_SESSION_READ_ONLY;
  buf_t b = {0};
  resp_t r;
  field_u64(&b, TAG_SESSION, s->handle);
  field_u64(&b, TAG_MECHANISM, m->mechanism);
  field_u64(&b, TAG_HANDLE2, unwrapping);
  field(&b, TAG_DATA, wrapped, wrapped_len);
  field_template(&b, TAG_ATTR, t, n);
  CK_RV rv = rpc(s->slot, OP_UNWRAP, &b, &r);
  free(b.p);
  if (rv == CKR_OK) *phKey = (CK_OBJECT_HANDLE)resp_u64(&r, TAG_HANDLE, 0, NULL);
  resp_free(&r);
  return rv;
}

EXPORT CK_RV C_DeriveKey (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c, CK_ATTRIBUTE_PTR d, CK_ULONG e, CK_OBJECT_HANDLE_PTR f) { (void)a; (void)b; (void)c; (void)d; (void)e; (void)f; return CKR_FUNCTION_NOT_SUPPORTED; }

EXPORT CK_RV C_SeedRandom (CK_SESSION_HANDLE h, CK_BYTE_PTR seed, CK_ULONG len) {
  SESSION(s, h)
  (void)s; (void)seed; (void)len;
  return CKR_RANDOM_SEED_NOT_SUPPORTED;
}

EXPORT CK_RV C_GenerateRandom (CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG len) {
  SESSION(s, h)
  if (out == NULL && len > 0) return CKR_ARGUMENTS_BAD;
  buf_t b = {0};
  resp_t r;
  field_u64(&b, TAG_COUNT, len);
  CK_RV rv = rpc(s->slot, OP_RANDOM, &b, &r);
  free(b.p);
  if (rv == CKR_OK) {
    size_t n = 0;
    const uint8_t *v = resp_field(&r, TAG_DATA, 0, &n);
    if (v == NULL || n != len) rv = CKR_DEVICE_ERROR;
    else memcpy(out, v, n);
  }
  resp_free(&r);
  return rv;
}

EXPORT CK_RV C_GetFunctionStatus (CK_SESSION_HANDLE h) { (void)h; return CKR_FUNCTION_NOT_PARALLEL; }
EXPORT CK_RV C_CancelFunction (CK_SESSION_HANDLE h) { (void)h; return CKR_FUNCTION_NOT_PARALLEL; }
EXPORT CK_RV C_WaitForSlotEvent (CK_FLAGS f, CK_SLOT_ID_PTR s, CK_VOID_PTR r) { (void)f; (void)s; (void)r; return CKR_FUNCTION_NOT_SUPPORTED; }

static CK_FUNCTION_LIST function_list = {
  { 2, 40 },
  C_Initialize, C_Finalize, C_GetInfo, C_GetFunctionList, C_GetSlotList, C_GetSlotInfo, C_GetTokenInfo, C_GetMechanismList,
  C_GetMechanismInfo, C_InitToken, C_InitPIN, C_SetPIN, C_OpenSession, C_CloseSession, C_CloseAllSessions, C_GetSessionInfo,
  C_GetOperationState, C_SetOperationState, C_Login, C_Logout, C_CreateObject, C_CopyObject, C_DestroyObject, C_GetObjectSize,
  C_GetAttributeValue, C_SetAttributeValue, C_FindObjectsInit, C_FindObjects, C_FindObjectsFinal, C_EncryptInit, C_Encrypt,
  C_EncryptUpdate, C_EncryptFinal, C_DecryptInit, C_Decrypt, C_DecryptUpdate, C_DecryptFinal, C_DigestInit, C_Digest,
  C_DigestUpdate, C_DigestKey, C_DigestFinal, C_SignInit, C_Sign, C_SignUpdate, C_SignFinal, C_SignRecoverInit, C_SignRecover,
  C_VerifyInit, C_Verify, C_VerifyUpdate, C_VerifyFinal, C_VerifyRecoverInit, C_VerifyRecover, C_DigestEncryptUpdate,
  C_DecryptDigestUpdate, C_SignEncryptUpdate, C_DecryptVerifyUpdate, C_GenerateKey, C_GenerateKeyPair, C_WrapKey, C_UnwrapKey,
  C_DeriveKey, C_SeedRandom, C_GenerateRandom, C_GetFunctionStatus, C_CancelFunction, C_WaitForSlotEvent
};
