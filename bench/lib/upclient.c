// upclient: sends a file as one or more requests with sendfile(2), the ingest benchmark's client.
//
//   upclient HOST PORT METHOD PATH FILE CHUNK_BYTES ["Header: value" ...]
//
// For each CHUNK_BYTES piece of FILE (the last may be shorter), on one keep-alive connection:
//   METHOD PATH HTTP/1.1 + Content-Length + Upload-Offset: <offset of the piece> + the extra
//   headers, then the bytes straight from the page cache with sendfile(2) (so the client costs
//   little), then waits for the response; anything but 2xx stops it (exit 1, the response shown).
// Prints: bytes=B seconds=S requests=N status=LAST  (seconds: first byte sent to last response)
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "netutil.h"

static const char *host;
static int port;

static int dial(void) {
  int fd = dial_tcp(host, port);
  if (fd < 0) {
    perror("upclient: connect");
    exit(1);
  }
  return fd;
}

// Reads one response (head + Content-Length body). Returns the status, 0 on failure.
static int read_response(int fd, int *closing, char *buf, size_t cap) {
  size_t have = 0;
  char *eoh = NULL;
  while (!(eoh = memmem(buf, have, "\r\n\r\n", 4))) {
    if (have == cap - 1) return 0;
    ssize_t got = recv(fd, buf + have, cap - 1 - have, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return 0;
    have += (size_t)got;
  }
  buf[have] = 0;
  int status = atoi(buf + 9);
  const char *cl = header(buf, eoh + 2, "Content-Length");
  long long remaining = (cl ? atoll(cl) : 0) - (long long)(have - (size_t)(eoh + 4 - buf));
  const char *c = header(buf, eoh + 2, "Connection");
  *closing = c && strncasecmp(c, "close", 5) == 0;
  size_t shown = have;
  while (remaining > 0) {
    if (shown >= cap - 1) shown = 0;  // keep the start of small error bodies for the message
    ssize_t got = recv(fd, buf + shown, (size_t)remaining < cap - 1 - shown ? (size_t)remaining : cap - 1 - shown, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return 0;
    shown += (size_t)got;
    buf[shown] = 0;
    remaining -= got;
  }
  return status;
}

int main(int argc, char **argv) {
  if (argc < 7) {
    fprintf(stderr, "usage: upclient HOST PORT METHOD PATH FILE CHUNK_BYTES [\"Header: value\" ...]\n");
    return 2;
  }
  host = argv[1];
  port = atoi(argv[2]);
  const char *method = argv[3], *path = argv[4];
  long long chunk = atoll(argv[6]);
  int file = open(argv[5], O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (file < 0 || fstat(file, &st) != 0 || chunk <= 0) {
    perror("upclient: open");
    return 2;
  }
  char extra[8192] = "";
  for (int i = 7; i < argc; i++) {
    strncat(extra, argv[i], sizeof extra - strlen(extra) - 3);
    strcat(extra, "\r\n");
  }
  static char buf[65536];
  int fd = dial();
  int status = 0, requests = 0;
  double start = now();
  for (long long off = 0; off < st.st_size; off += chunk) {
    long long n = st.st_size - off < chunk ? st.st_size - off : chunk;
    char head[10240];
    int hn = snprintf(head, sizeof head,
                      "%s %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Length: %lld\r\nUpload-Offset: %lld\r\n%s\r\n",
                      method, path, host, port, n, off, extra);
    int sent_ok = send_all(fd, head, (size_t)hn) == 0;
    off_t pos = off;
    long long left = n;
    while (sent_ok && left > 0) {
      ssize_t w = sendfile(fd, file, &pos, left < (1LL << 30) ? (size_t)left : (1u << 30));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) sent_ok = 0;
      else left -= w;
    }
    int closing = 0;
    status = read_response(fd, &closing, buf, sizeof buf);
    requests++;
    if (status < 200 || status > 299 || !sent_ok) {
      fprintf(stderr, "upclient: %s %s at offset %lld: status %d%s\n%s\n", method, path, off, status,
              sent_ok ? "" : " (the server stopped reading the body)", buf);
      return 1;
    }
    if (closing) {
      close(fd);
      fd = dial();
    }
  }
  double seconds = now() - start;
  close(fd);
  printf("bytes=%lld seconds=%.3f requests=%d status=%d\n", (long long)st.st_size, seconds, requests, status);
  return 0;
}
