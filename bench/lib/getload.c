// getload: a GET load generator for large bodies (the benchmark's second client besides wrk).
//
//   getload HOST PORT PATH CONNS SECONDS FILE_SIZE [RANGE_LEN]
//
// CONNS threads, one keep-alive connection each, issue GET PATH back to back for SECONDS and
// recv() the bodies 1 MiB at a time (wrk reads 8 KiB at a time and is the bottleneck on large
// bodies). With RANGE_LEN, every request asks for "Range: bytes=X-(X+RANGE_LEN-1)" with X uniform
// in [0, FILE_SIZE-RANGE_LEN]. A response counts as an error unless it is 200 (whole: length
// FILE_SIZE) or 206 (range: length RANGE_LEN). Prints one line:
//   requests=N bytes=B seconds=S errors=E
// bytes counts body bytes only; seconds runs until the last in-flight response has ended.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "netutil.h"

#define BUF (1 << 20)

static const char *host, *path;
static int port;
static long long file_size, range_len;
static double deadline;

struct result { long long requests, bytes, errors; unsigned seed; };

static uint64_t next_rand(unsigned *s) {  // two rand_r draws: enough bits for offsets < 2^62
  return ((uint64_t)rand_r(s) << 31) ^ (uint64_t)rand_r(s);
}

static void *worker(void *arg) {
  struct result *r = arg;
  char *buf = malloc(BUF);
  int fd = dial_tcp(host, port);
  if (fd < 0) {
    perror("getload: connect");
    r->errors++;
    free(buf);
    return NULL;
  }
  while (now() < deadline) {
    char req[1024];
    int n;
    long long expect = file_size;
    if (range_len > 0) {
      long long first = (long long)(next_rand(&r->seed) % (uint64_t)(file_size - range_len + 1));
      n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s:%d\r\nRange: bytes=%lld-%lld\r\n\r\n",
                   path, host, port, first, first + range_len - 1);
      expect = range_len;
    } else {
      n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s:%d\r\n\r\n", path, host, port);
    }
    int ok = send_all(fd, req, (size_t)n) == 0;
    size_t have = 0;
    char *eoh = NULL;
    while (ok) {
      ssize_t got = recv(fd, buf + have, BUF - have, 0);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) { ok = 0; break; }
      have += (size_t)got;
      if ((eoh = memmem(buf, have, "\r\n\r\n", 4))) break;
      if (have == BUF) { ok = 0; break; }
    }
    long long length = -1;
    int status = 0, closing = 0;
    if (ok) {
      status = atoi(buf + 9);
      const char *cl = header(buf, eoh + 2, "Content-Length");
      if (cl) length = atoll(cl);
      const char *c = header(buf, eoh + 2, "Connection");
      if (c && strncasecmp(c, "close", 5) == 0) closing = 1;
      if (length < 0) ok = 0;
    }
    if (ok) {
      long long remaining = length - (long long)(have - (size_t)(eoh + 4 - buf));
      while (remaining > 0) {
        ssize_t got = recv(fd, buf, remaining < BUF ? (size_t)remaining : BUF, 0);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) { ok = 0; break; }
        remaining -= got;
      }
      if (remaining < 0) ok = 0;
    }
    if (ok) {
      r->requests++;
      r->bytes += length;
      if (!((status == 200 && range_len == 0) || (status == 206 && range_len > 0)) || length != expect) r->errors++;
    } else {
      r->errors++;
      closing = 1;
    }
    if (closing) {
      close(fd);
      fd = dial_tcp(host, port);
      if (fd < 0) break;
    }
  }
  if (fd >= 0) close(fd);
  free(buf);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 7) {
    fprintf(stderr, "usage: getload HOST PORT PATH CONNS SECONDS FILE_SIZE [RANGE_LEN]\n");
    return 2;
  }
  host = argv[1];
  port = atoi(argv[2]);
  path = argv[3];
  int conns = atoi(argv[4]);
  double seconds = atof(argv[5]);
  file_size = atoll(argv[6]);
  range_len = argc > 7 ? atoll(argv[7]) : 0;
  if (conns < 1 || seconds <= 0 || file_size <= 0 || range_len < 0 || range_len > file_size) {
    fprintf(stderr, "getload: bad arguments\n");
    return 2;
  }
  pthread_t *t = calloc((size_t)conns, sizeof *t);
  struct result *r = calloc((size_t)conns, sizeof *r);
  double start = now();
  deadline = start + seconds;
  for (int i = 0; i < conns; i++) {
    r[i].seed = (unsigned)time(NULL) * 2654435761u + (unsigned)i * 40503u + (unsigned)getpid();
    pthread_create(&t[i], NULL, worker, &r[i]);
  }
  struct result sum = {0};
  for (int i = 0; i < conns; i++) {
    pthread_join(t[i], NULL);
    sum.requests += r[i].requests;
    sum.bytes += r[i].bytes;
    sum.errors += r[i].errors;
  }
  printf("requests=%lld bytes=%lld seconds=%.3f errors=%lld\n", sum.requests, sum.bytes, now() - start,
         sum.errors);
  return 0;
}
