// Edit-to-visible latency of the notepad's WebSocket: client A pushes a
// one-character edit, client B (another connection, same note) receives the
// update; the time between A's send and B's receipt, N times, one at a time.
//   wslat HOST PORT TOKEN NOTE_ID N [INTERVAL_MS]
// Edits go out INTERVAL_MS apart (default 15: 66 a second, under the hub's
// per-connection rate limit of 100 messages a second, which would otherwise
// pace the run and be what is measured).
// Prints one JSON line: {"n", "p50_us", "p90_us", "p99_us", "max_us"}.
#include "../lib/netutil.h"  // first: it defines _GNU_SOURCE

#include <stdio.h>
#include <stdlib.h>

typedef struct {
  int fd;
  char buf[1 << 20];
  size_t have;
} Conn;

static void die(const char *m) {
  fprintf(stderr, "wslat: %s\n", m);
  exit(1);
}

static void ws_connect(Conn *c, const char *host, int port, const char *token, const char *note) {
  c->fd = dial_tcp(host, port);
  if (c->fd < 0) die("cannot connect");
  c->have = 0;
  char req[1024];
  int n = snprintf(req, sizeof req,
                   "GET /api/notes/%s/ws HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Version: 13\r\nAuthorization: Bearer %s\r\n\r\n",
                   note, host, port, token);
  if (send_all(c->fd, req, (size_t)n)) die("send");
  for (;;) {
    ssize_t r = recv(c->fd, c->buf + c->have, sizeof c->buf - c->have, 0);
    if (r <= 0) die("handshake: connection closed");
    c->have += (size_t)r;
    char *end = memmem(c->buf, c->have, "\r\n\r\n", 4);
    if (!end) continue;
    if (strncmp(c->buf, "HTTP/1.1 101", 12) != 0) die("handshake refused");
    size_t head = (size_t)(end + 4 - c->buf);
    memmove(c->buf, c->buf + head, c->have - head);
    c->have -= head;
    return;
  }
}

static void ws_send(Conn *c, const char *text) {
  size_t n = strlen(text);
  unsigned char h[14];
  size_t hl = 0;
  h[hl++] = 0x81;
  if (n < 126) {
    h[hl++] = 0x80 | (unsigned char)n;
  } else if (n < 65536) {
    h[hl++] = 0x80 | 126;
    h[hl++] = (unsigned char)(n >> 8);
    h[hl++] = (unsigned char)n;
  } else {
    die("message too long");
  }
  unsigned char key[4] = {0x12, 0x34, 0x56, 0x78};
  memcpy(h + hl, key, 4);
  hl += 4;
  char *out = malloc(hl + n);
  memcpy(out, h, hl);
  for (size_t i = 0; i < n; i++) out[hl + i] = (char)(text[i] ^ key[i % 4]);
  if (send_all(c->fd, out, hl + n)) die("send");
  free(out);
}

// Next text message (NUL-terminated, in a static buffer).
static const char *ws_recv(Conn *c) {
  static char msg[1 << 20];
  for (;;) {
    if (c->have >= 2) {
      unsigned char *p = (unsigned char *)c->buf;
      size_t len = p[1] & 0x7f, hl = 2;
      if (len == 126) {
        if (c->have < 4) goto more;
        len = ((size_t)p[2] << 8) | p[3];
        hl = 4;
      } else if (len == 127) {
        if (c->have < 10) goto more;
        len = 0;
        for (int i = 0; i < 8; i++) len = (len << 8) | p[2 + i];
        hl = 10;
      }
      if (len + 1 > sizeof msg) die("message too large");
      if (c->have >= hl + len) {
        int op = p[0] & 0x0f;
        memcpy(msg, c->buf + hl, len);
        msg[len] = 0;
        memmove(c->buf, c->buf + hl + len, c->have - hl - len);
        c->have -= hl + len;
        if (op == 8) die("closed by the server");
        if (op == 1) return msg;
        continue;  // ping/pong/binary: skip
      }
    }
  more:;
    ssize_t r = recv(c->fd, c->buf + c->have, sizeof c->buf - c->have, 0);
    if (r <= 0) die("connection closed");
    c->have += (size_t)r;
  }
}

// Copies the string value of "key" in a flat JSON message into out.
static int field(const char *msg, const char *key, char *out, size_t cap) {
  char pat[64];
  snprintf(pat, sizeof pat, "\"%s\":\"", key);
  const char *p = strstr(msg, pat);
  if (!p) return 0;
  p += strlen(pat);
  size_t i = 0;
  while (*p && *p != '"' && i + 1 < cap) out[i++] = *p++;
  out[i] = 0;
  return 1;
}

static const char *wait_type(Conn *c, const char *type) {
  char pat[64];
  snprintf(pat, sizeof pat, "\"t\":\"%s\"", type);
  for (;;) {
    const char *m = ws_recv(c);
    if (strstr(m, pat)) return m;
    if (strstr(m, "\"t\":\"error\"")) {
      fprintf(stderr, "wslat: server error: %.300s\n", m);
      exit(1);
    }
  }
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc != 6 && argc != 7) die("usage: wslat HOST PORT TOKEN NOTE_ID N [INTERVAL_MS]");
  double interval = argc == 7 ? atof(argv[6]) / 1000 : 0.015;
  const char *host = argv[1], *token = argv[3], *note = argv[4];
  int port = atoi(argv[2]), n = atoi(argv[5]);
  static Conn a, b;
  ws_connect(&a, host, port, token, note);
  ws_connect(&b, host, port, token, note);
  ws_send(&a, "{\"t\":\"hello\",\"name\":\"bench-a\"}");
  ws_send(&b, "{\"t\":\"hello\",\"name\":\"bench-b\"}");
  char version[4096], session[64];
  const char *m = wait_type(&a, "init");
  if (!field(m, "version", version, sizeof version) || !field(m, "session", session, sizeof session)) {
    die("init without version");
  }
  wait_type(&b, "init");
  double *lat = calloc((size_t)n, sizeof *lat);
  char push[8192];
  double next = now();
  for (int i = 0; i < n; i++) {
    while (now() < next) {
      struct timespec ts = {0, 200000};
      nanosleep(&ts, NULL);
    }
    next += interval;
    snprintf(push, sizeof push, "{\"t\":\"push\",\"id\":%d,\"base\":\"%s\",\"edits\":[[0,0,\"x\"]]}", i, version);
    double t0 = now();
    ws_send(&a, push);
    wait_type(&b, "update");
    lat[i] = (now() - t0) * 1e6;
    // A's own update (by = its session) names the new version.
    m = wait_type(&a, "update");
    if (!field(m, "version", version, sizeof version)) die("update without version");
  }
  qsort(lat, (size_t)n, sizeof *lat, cmp);
  printf("{\"n\":%d,\"p50_us\":%.0f,\"p90_us\":%.0f,\"p99_us\":%.0f,\"max_us\":%.0f}\n", n, lat[n / 2],
         lat[n * 9 / 10], lat[n * 99 / 100], lat[n - 1]);
  return 0;
}
