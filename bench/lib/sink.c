// sink: the loopback-plus-disk ceiling for ingest — the least an HTTP receiver can do.
//
//   sink PORT DIR
//
// Listens on 127.0.0.1:PORT; a thread per connection; keep-alive. Each request's body
// (Content-Length only) is recv()ed 1 MiB at a time (MSG_WAITALL) and pwrite()n to DIR/<last path
// segment> at Upload-Offset (default 0), then fdatasync(2) once, then "204 No Content" — the
// pattern of one committed tus chunk, without any bookkeeping. A path starting with /discard
// drops the bytes instead (the loopback-only ceiling).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "netutil.h"

#define BUF (1 << 20)

static const char *dir;

static int write_all(int fd, const char *p, size_t n, off_t off) {
  while (n > 0) {
    ssize_t w = pwrite(fd, p, n, off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
    off += w;
  }
  return 0;
}

static void *serve(void *arg) {
  int c = (int)(intptr_t)arg;
  char *buf = malloc(BUF);
  size_t have = 0;
  for (;;) {
    char *eoh;
    while (!(eoh = memmem(buf, have, "\r\n\r\n", 4))) {
      if (have == 65536) goto out;
      ssize_t got = recv(c, buf + have, 65536 - have, 0);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) goto out;
      have += (size_t)got;
    }
    size_t head_len = (size_t)(eoh + 4 - buf);
    const char *cl = header(buf, eoh + 2, "Content-Length");
    const char *uo = header(buf, eoh + 2, "Upload-Offset");
    long long length = cl ? atoll(cl) : 0;
    off_t off = uo ? (off_t)atoll(uo) : 0;
    char path[512] = "";
    sscanf(buf, "%*s %511s", path);
    int discard = strncmp(path, "/discard", 8) == 0;
    int fd = -1;
    if (!discard) {
      const char *name = strrchr(path, '/');
      name = name && name[1] ? name + 1 : "body";
      if (strstr(name, "..")) name = "body";
      char file[1024];
      snprintf(file, sizeof file, "%s/%s", dir, name);
      fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
      if (fd < 0) {
        perror("sink: open");
        goto out;
      }
    }
    // Body bytes that came with the head.
    size_t extra = have - head_len;
    size_t first = extra < (size_t)length ? extra : (size_t)length;
    if (fd >= 0 && first > 0 && write_all(fd, buf + head_len, first, off) != 0) goto fail;
    off += (off_t)first;
    long long remaining = length - (long long)first;
    memmove(buf, buf + head_len + first, extra - first);  // pipelined bytes (none with our client)
    have = extra - first;
    while (remaining > 0) {
      size_t want = remaining < BUF ? (size_t)remaining : BUF;
      ssize_t got = recv(c, buf + have, want, MSG_WAITALL);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) goto fail;
      if (fd >= 0 && write_all(fd, buf + have, (size_t)got, off) != 0) goto fail;
      off += got;
      remaining -= got;
    }
    if (fd >= 0) {
      if (fdatasync(fd) != 0) goto fail;
      close(fd);
    }
    static const char ok[] = "HTTP/1.1 204 No Content\r\n\r\n";
    if (send_all(c, ok, sizeof ok - 1) != 0) goto out;
    continue;
  fail:
    perror("sink: body");
    if (fd >= 0) close(fd);
    {
      const char *e = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
      send_all(c, e, strlen(e));
    }
    goto out;
  }
out:
  close(c);
  free(buf);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: sink PORT DIR\n");
    return 2;
  }
  dir = argv[2];
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 128) != 0) {
    perror("sink: listen");
    return 1;
  }
  for (;;) {
    int c = accept4(s, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      perror("sink: accept");
      return 1;
    }
    pthread_t t;
    pthread_create(&t, NULL, serve, (void *)(intptr_t)c);
    pthread_detach(t);
  }
}
