"""A small RFC 6455 client over a plain socket, for the integration tests.

It speaks the protocol correctly by default (random key, checked
Sec-WebSocket-Accept, masked frames) and can also send what a correct client
never would (unmasked frames, reserved bits, unknown opcodes, a length header
without its payload) to test how the server refuses it.
"""
import base64
import hashlib
import json
import os
import socket
import struct
import time

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

MAX_HEADER_BYTES = 64 << 10
MAX_FRAME_BYTES = 64 << 20  # what this client accepts from the server


class HandshakeError(Exception):
    """The server did not switch protocols; `status` is its HTTP status (0 if none)."""

    def __init__(self, status, headers, body):
        super().__init__(f"upgrade refused: {status} {body[:300]!r}")
        self.status, self.headers, self.body = status, headers, body


class ConnectionClosed(Exception):
    """The server closed: `code` from its close frame (None when the TCP
    connection ended without one)."""

    def __init__(self, code, reason=""):
        super().__init__(f"connection closed: code={code} reason={reason!r}")
        self.code, self.reason = code, reason


class Frame:
    def __init__(self, fin, rsv, opcode, payload):
        self.fin, self.rsv, self.opcode, self.payload = fin, rsv, opcode, payload

    def close_code(self):
        """(code, reason) of a close frame; code None when the payload is empty."""
        if len(self.payload) < 2:
            return None, ""
        return struct.unpack("!H", self.payload[:2])[0], self.payload[2:].decode("utf-8", "replace")

    def __repr__(self):
        return f"Frame(fin={self.fin}, rsv={self.rsv}, op={self.opcode}, {self.payload[:80]!r})"


def accept_key(key):
    """The Sec-WebSocket-Accept a server must answer to `key` (RFC 6455 4.2.2)."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def encode_frame(opcode, payload=b"", fin=True, rsv=0, mask=True, length=None, mask_key=None):
    """One frame's bytes. `length` overrides the length field (the payload is
    still what is sent); `rsv` is the three reserved bits (0..7)."""
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + payload
    key = mask_key or os.urandom(4)
    return head + key + _xor(payload, key)


def _xor(data, key):
    if not data:
        return b""
    k = (key * (len(data) // 4 + 1))[:len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(k, "big")).to_bytes(len(data), "big")


class WebSocket:
    """A client connection. Not thread-safe."""

    def __init__(self, sock, leftover=b"", response_headers=None):
        self.sock = sock
        self.buf = bytearray(leftover)
        self.response_headers = response_headers or {}
        self.closed_by_server = None  # close code once received
        self.skipped = []             # JSON messages recv_json passed over (for diagnostics)

    # --- opening ---
    @classmethod
    def connect(cls, host, port, path, headers=None, timeout=10):
        """Opens the connection and does the handshake; HandshakeError when the
        server answers anything but a valid 101."""
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        h = {"Host": f"{host}:{port}", "Upgrade": "websocket", "Connection": "Upgrade",
             "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13"}
        h.update(headers or {})
        req = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
        try:
            sock.sendall(req.encode())
            data = bytearray()
            deadline = time.monotonic() + timeout
            while b"\r\n\r\n" not in data:
                if len(data) > MAX_HEADER_BYTES:
                    raise HandshakeError(0, {}, bytes(data[:300]))
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = sock.recv(4096)
                if not chunk:
                    raise HandshakeError(0, {}, bytes(data))
                data += chunk
            head, _, rest = bytes(data).partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            parts = lines[0].split(" ", 2)
            status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
            resp = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                resp[k.strip().lower()] = v.strip()
            if status != 101:
                body = rest
                n = int(resp.get("content-length", "0") or 0)
                sock.settimeout(2)
                try:
                    while len(body) < min(n, 1 << 20):
                        chunk = sock.recv(65536)
                        if not chunk:
                            break
                        body += chunk
                except OSError:
                    pass
                raise HandshakeError(status, resp, body)
            if resp.get("sec-websocket-accept") != accept_key(key):
                raise HandshakeError(status, resp, b"bad Sec-WebSocket-Accept: " + resp.get(
                    "sec-websocket-accept", "").encode())
            if resp.get("upgrade", "").lower() != "websocket" or "upgrade" not in resp.get("connection", "").lower():
                raise HandshakeError(status, resp, b"missing Upgrade/Connection headers")
        except BaseException:
            sock.close()
            raise
        return cls(sock, rest, resp)

    # --- sending ---
    def send_raw(self, data, timeout=60):
        self.sock.settimeout(timeout)
        self.sock.sendall(data)

    def send_frame(self, opcode, payload=b"", timeout=60, **kw):
        """A frame as encode_frame builds it (masked unless mask=False)."""
        self.send_raw(encode_frame(opcode, payload, **kw), timeout)

    def send_text(self, text):
        self.send_frame(OP_TEXT, text.encode("utf-8"))

    def send_binary(self, data):
        self.send_frame(OP_BINARY, data)

    def send_json(self, obj):
        self.send_text(json.dumps(obj))

    def ping(self, data=b""):
        self.send_frame(OP_PING, data)

    def close(self, code=1000, reason=""):
        """Sends a close frame (if possible) and closes the socket."""
        try:
            self.send_frame(OP_CLOSE, struct.pack("!H", code) + reason.encode(), timeout=2)
        except OSError:
            pass
        self.sock.close()

    def abort(self):
        """Drops the TCP connection without a close frame."""
        self.sock.close()

    # --- receiving ---
    def _fill(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("timed out waiting for a frame")
            self.sock.settimeout(left)
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise ConnectionClosed(self.closed_by_server)
            self.buf += chunk

    def _take(self, n, deadline):
        self._fill(n, deadline)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def recv_frame(self, timeout=10):
        """The next frame, whatever it is (socket.timeout when none comes;
        ConnectionClosed on EOF)."""
        deadline = time.monotonic() + timeout
        b0, b1 = self._take(2, deadline)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._take(2, deadline))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._take(8, deadline))[0]
        if b1 & 0x80:
            raise AssertionError("the server sent a masked frame (RFC 6455 5.1 forbids it)")
        if n > MAX_FRAME_BYTES:
            raise AssertionError(f"the server sent a frame of {n} bytes")
        payload = self._take(n, deadline)
        return Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF, payload)

    def recv_message(self, timeout=10):
        """The next data message as (opcode, bytes), reassembling fragments and
        answering pings. A close frame raises ConnectionClosed (and is echoed)."""
        deadline = time.monotonic() + timeout
        parts, opcode = [], None
        while True:
            f = self.recv_frame(max(0.01, deadline - time.monotonic()))
            if f.opcode == OP_PING:
                self.send_frame(OP_PONG, f.payload)
                continue
            if f.opcode == OP_PONG:
                continue
            if f.opcode == OP_CLOSE:
                code, reason = f.close_code()
                self.closed_by_server = code
                try:
                    self.send_frame(OP_CLOSE, f.payload[:2], timeout=2)
                except OSError:
                    pass
                raise ConnectionClosed(code, reason)
            if f.opcode != OP_CONT:
                opcode = f.opcode
            parts.append(f.payload)
            if f.fin:
                return opcode, b"".join(parts)

    def recv_json(self, type=None, timeout=10, where=None):
        """The next JSON message whose "t" is `type` (any when None) and for
        which where(msg) holds; other messages are skipped (kept in
        self.skipped). socket.timeout when none comes in time."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout(f"no {type or 'JSON'} message within {timeout}s; skipped: "
                                     f"{[m.get('t') for m in self.skipped[-20:]]}")
            opcode, data = self.recv_message(left)
            if opcode != OP_TEXT:
                raise AssertionError(f"expected a text frame, got opcode {opcode}: {data[:100]!r}")
            msg = json.loads(data.decode("utf-8"))
            if (type is None or msg.get("t") == type) and (where is None or where(msg)):
                return msg
            self.skipped.append(msg)

    def expect_close(self, timeout=10):
        """Reads (discarding data) until the server's close frame; returns its
        code, or None if the TCP connection ended without one."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                self.recv_message(max(0.01, deadline - time.monotonic()))
        except ConnectionClosed as e:
            return e.code
        except ConnectionResetError:
            return self.closed_by_server

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()
