#!/usr/bin/env python3
"""Opens N keep-alive connections that each send one GET and then stay open, idle.

    idle_conns.py HOST PORT PATH N STOP_FILE

Each connection sends "GET PATH HTTP/1.1" and reads the whole response (Content-Length).
Then prints "READY opened=N ok=M" (M: 2xx responses without "Connection: close") and waits until
STOP_FILE exists (at most 120 s). Before closing, checks how many the server has closed
meanwhile and prints "DONE still_open=K".
"""
import os
import select
import socket
import sys
import time


def read_response(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            return None, False
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    remaining = int(headers.get("content-length", "0")) - len(body)
    while remaining > 0:
        chunk = s.recv(min(remaining, 65536))
        if not chunk:
            return None, False
        remaining -= len(chunk)
    return status, headers.get("connection", "").lower() != "close"


def main():
    host, port, path, n, stop_file = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    socks, ok = [], 0
    for _ in range(n):
        s = socket.create_connection((host, port))
        s.sendall(request)
        status, keep = read_response(s)
        if status is not None and 200 <= status < 300 and keep:
            ok += 1
        socks.append(s)
    print(f"READY opened={len(socks)} ok={ok}", flush=True)
    deadline = time.monotonic() + 120
    while not os.path.exists(stop_file) and time.monotonic() < deadline:
        time.sleep(0.05)
    still_open = 0
    for s in socks:
        r, _, _ = select.select([s], [], [], 0)
        if not r:
            still_open += 1  # nothing to read and no EOF: open
        s.close()
    print(f"DONE still_open={still_open}", flush=True)


if __name__ == "__main__":
    main()
