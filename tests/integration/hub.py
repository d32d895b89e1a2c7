"""Test harness: starts real stream-hub processes on loopback and talks HTTP.

Every hub gets its own free port, STATE_DIR, LOGS_DIR and TEMP_DIR; several
hubs may share one DATA_DIR (the shared storage). Processes are stopped by
their PID only.
"""
import base64
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

BINARY = os.environ.get("HUB_BINARY", os.path.join(os.path.dirname(__file__), "../../build/stream-hub"))
TOKEN = "integration-token-0123456789"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Hub:
    def __init__(self, data_dir, name="a", env=None, port=None):
        self.data_dir = data_dir
        self.home = tempfile.mkdtemp(prefix=f"hub-{name}-")
        self.port = port or free_port()
        self.env = dict(os.environ)
        self.env.update({
            "HTTP_BIND": "127.0.0.1", "HTTP_PORT": str(self.port), "DATA_DIR": data_dir,
            "STATE_DIR": os.path.join(self.home, "state"), "LOGS_DIR": os.path.join(self.home, "logs"),
            "TEMP_DIR": os.path.join(self.home, "tmp"), "ADMIN_TOKEN": TOKEN, "LOG_LEVEL": "info",
            "RESCAN_INTERVAL_S": "1",
        })
        self.env.update(env or {})
        self.proc = None

    def start(self, wait=True):
        if getattr(self, "log", None):
            self.log.close()  # a restart: the child keeps its own descriptor
        self.log = open(os.path.join(self.home, "stderr.log"), "ab")
        self.proc = subprocess.Popen([BINARY, "serve"], env=self.env, stdout=self.log, stderr=self.log,
                                     cwd=self.home)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hub exited with {self.proc.returncode}: {self.stderr()[-2000:]}")
            try:
                if self.request("GET", "/healthz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("hub did not become healthy: " + self.stderr()[-2000:])

    def stderr(self):
        try:
            with open(os.path.join(self.home, "stderr.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()
            self.log = None
        return self.proc.returncode if self.proc else None

    def cleanup(self):
        code = self.stop(signal.SIGKILL)
        if os.environ.get("HUB_KEEP") or (code is not None and code not in (0, -signal.SIGKILL)):
            print(f"hub {self.port} exited with {code}:\n" + self.stderr()[-3000:])
        if not os.environ.get("HUB_KEEP"):
            shutil.rmtree(self.home, ignore_errors=True)

    def conn(self, timeout=30):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, auth=False, timeout=30):
        h = dict(headers or {})
        if auth:
            h["Authorization"] = "Bearer " + TOKEN
        c = self.conn(timeout)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            c.close()

    def json(self, method, path, obj=None, auth=True, expect=None):
        body = None if obj is None else json.dumps(obj).encode()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        status, h, data = self.request(method, path, body, headers, auth=auth)
        if expect is not None and status != expect:
            raise AssertionError(f"{method} {path}: {status} {data[:500]!r}")
        return status, (json.loads(data) if data and h.get("content-type", "").startswith("application/json") else data)

    # --- tus helpers ---
    def tus_create(self, length, metadata=None, extra=None, body=None):
        md = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in (metadata or {}).items())
        h = {"Tus-Resumable": "1.0.0", "Upload-Length": str(length)}
        if md:
            h["Upload-Metadata"] = md
        if body is not None:
            h["Content-Type"] = "application/offset+octet-stream"
        h.update(extra or {})
        return self.request("POST", "/files/", body=body, headers=h, auth=True)

    def tus_patch(self, location, offset, data, extra=None):
        h = {"Tus-Resumable": "1.0.0", "Upload-Offset": str(offset),
             "Content-Type": "application/offset+octet-stream"}
        h.update(extra or {})
        return self.request("PATCH", location, body=data, headers=h, auth=True)

    def open_patch(self, location, offset, length, timeout=120):
        """Starts a tus PATCH of `length` bytes and returns the connection; the
        caller sends the body (in pieces, slowly, or not at all) with .send()
        and reads the answer with .getresponse()."""
        c = self.conn(timeout)
        c.putrequest("PATCH", location)
        for k, v in {"Tus-Resumable": "1.0.0", "Upload-Offset": str(offset), "Authorization": "Bearer " + TOKEN,
                     "Content-Type": "application/offset+octet-stream", "Content-Length": str(length)}.items():
            c.putheader(k, v)
        c.endheaders()
        return c

    def tus_head(self, location):
        return self.request("HEAD", location, headers={"Tus-Resumable": "1.0.0"}, auth=True)

    def upload(self, data, title="clip", filename="clip.mp4"):
        status, h, _ = self.tus_create(len(data), {"filename": filename, "title": title})
        assert status == 201, status
        loc = h["location"]
        status, h, body = self.tus_patch(loc, 0, data)
        assert status == 204, (status, body)
        return loc.rsplit("/", 1)[1]

    def wait_for(self, predicate, timeout=15, what="condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            v = predicate()
            if v:
                return v
            time.sleep(0.1)
        raise AssertionError("timed out waiting for " + what)


def checksum_header(alg, data):
    return f"{alg} " + base64.b64encode(hashlib.new(alg, data).digest()).decode()


def random_bytes(n, seed=1):
    import random
    r = random.Random(seed)
    return r.randbytes(n)


_clip = None


def test_clip():
    """A small H.264/AAC mp4 generated once per test process with ffmpeg."""
    global _clip
    if _clip is None:
        d = tempfile.mkdtemp(prefix="hub-clip-")
        _clip = os.path.join(d, "clip.mp4")
        subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
                        "-f", "lavfi", "-i", "sine=frequency=440", "-t", "4", "-c:v", "libx264",
                        "-pix_fmt", "yuv420p", "-c:a", "aac", "-movflags", "+faststart", _clip], check=True)
    return _clip


class HubTestCase(unittest.TestCase):
    """One hub on a fresh data directory per test class."""

    hub_env = {}

    @classmethod
    def setUpClass(cls):
        cls.data_dir = tempfile.mkdtemp(prefix="hub-data-")
        cls.hub = Hub(cls.data_dir, env=cls.hub_env).start()

    @classmethod
    def tearDownClass(cls):
        cls.hub.cleanup()
        shutil.rmtree(cls.data_dir, ignore_errors=True)


class TwoHubsTestCase(unittest.TestCase):
    """Two hub processes, a and b, on one fresh data directory per test class."""

    @classmethod
    def setUpClass(cls):
        cls.data = tempfile.mkdtemp(prefix="hub-shared-")
        cls.a = Hub(cls.data, "a").start()
        cls.b = Hub(cls.data, "b").start()

    @classmethod
    def tearDownClass(cls):
        cls.a.cleanup()
        cls.b.cleanup()
        shutil.rmtree(cls.data, ignore_errors=True)
