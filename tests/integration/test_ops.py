"""Operations: health, readiness, metrics, configuration, graceful shutdown, limits."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from hub import BINARY, TOKEN, Hub, HubTestCase, random_bytes


class Operations(HubTestCase):
    def test_healthz_readyz_metrics(self):
        status, _, body = self.hub.request("GET", "/healthz")
        self.assertEqual((status, body), (200, b"ok\n"))
        status, _, body = self.hub.request("GET", "/readyz")
        self.assertEqual(status, 200, body)
        self.hub.request("GET", "/api/videos")
        self.hub.request("GET", "/api/videos/nope")
        status, h, body = self.hub.request("GET", "/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(h["content-type"].startswith("text/plain; version=0.0.4"))
        text = body.decode()
        self.assertIn('hub_http_requests_total{method="GET",route="/api/videos",status="200"}', text)
        self.assertIn('route="/api/videos/{id}",status="404"', text)
        for name in ("hub_http_received_bytes_total", "hub_http_sent_bytes_total", "hub_uploads_in_flight",
                     "hub_http_errors_total"):
            self.assertIn(name, text)

    def test_header_flood_is_431(self):
        s = socket.create_connection(("127.0.0.1", self.hub.port))
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"y" * 100) for i in range(300)) + b"\r\n")
        self.assertIn(b" 431 ", s.recv(4096).split(b"\r\n")[0] + b" ")
        s.close()

    def test_malformed_request_line_is_400(self):
        s = socket.create_connection(("127.0.0.1", self.hub.port))
        s.sendall(b"THIS IS NOT HTTP\r\n\r\n")
        self.assertIn(b"400", s.recv(4096).split(b"\r\n")[0])
        s.close()

    def test_unknown_route_404_and_wrong_method_405(self):
        self.assertEqual(self.hub.request("GET", "/nope")[0], 404)
        status, h, _ = self.hub.request("PUT", "/api/videos")
        self.assertEqual(status, 405)
        self.assertIn("GET", h["allow"])


class SlowLoris(HubTestCase):
    hub_env = {"HTTP_HEADER_TIMEOUT_S": "1"}

    def test_slow_head_is_cut_off(self):
        s = socket.create_connection(("127.0.0.1", self.hub.port))
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        s.settimeout(10)
        start = time.monotonic()
        data = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (ConnectionResetError, socket.timeout):
            pass
        self.assertLess(time.monotonic() - start, 5)
        self.assertTrue(data == b"" or b" 408 " in data.split(b"\r\n")[0] + b" ", data[:100])
        # The hub still serves others.
        self.assertEqual(self.hub.request("GET", "/healthz")[0], 200)


class Configuration(unittest.TestCase):
    def run_hub(self, args, env):
        e = dict(os.environ)
        e.update(env)
        return subprocess.run([BINARY] + args, env=e, capture_output=True, text=True, timeout=30)

    def test_invalid_value_stops_startup_naming_key_and_range(self):
        out = self.run_hub(["serve"], {"HTTP_PORT": "99999"})
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("HTTP_PORT", out.stderr)
        self.assertIn("65535", out.stderr)
        out = self.run_hub(["serve"], {"P2P_ENABLED": "maybe"})
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("P2P_ENABLED", out.stderr)

    def test_config_prints_effective_values_and_sources(self):
        d = tempfile.mkdtemp()
        try:
            with open(os.path.join(d, "hub.toml"), "w") as f:
                f.write('HTTP_PORT = 9000\nDATA_DIR = "/srv/hub"\n')
            with open(os.path.join(d, ".env"), "w") as f:
                f.write("HTTP_PORT=9001\n")
            e = dict(os.environ, P2P_NODE_NAME="envnode")
            e.pop("HTTP_PORT", None)
            out = subprocess.run([BINARY, "--config", "hub.toml", "config"], cwd=d, env=e, capture_output=True,
                                 text=True, timeout=30)
            self.assertEqual(out.returncode, 0, out.stderr)
            lines = {l.split("=")[0].strip(): l for l in out.stdout.splitlines() if "=" in l}
            self.assertIn("9001", lines["HTTP_PORT"])
            self.assertIn(".env", lines["HTTP_PORT"])
            self.assertIn("/srv/hub", lines["DATA_DIR"])
            self.assertIn("hub.toml", lines["DATA_DIR"])
            self.assertIn("/srv/hub/videos", lines["UPLOAD_DIR"])
            self.assertIn("envnode", lines["P2P_NODE_NAME"])
            self.assertIn("environment", lines["P2P_NODE_NAME"])
        finally:
            shutil.rmtree(d)

    def test_two_processes_cannot_share_a_state_dir(self):
        data = tempfile.mkdtemp()
        a = Hub(data, "a").start()
        try:
            b = Hub(data, "b", env={"STATE_DIR": a.env["STATE_DIR"]})
            b.start(wait=False)
            self.assertNotEqual(b.proc.wait(20), 0)
            self.assertIn("STATE_DIR", b.stderr())
            b.cleanup()
        finally:
            a.cleanup()
            shutil.rmtree(data, ignore_errors=True)


class GracefulShutdown(unittest.TestCase):
    def test_sigterm_mid_upload_leaves_it_resumable(self):
        data_dir = tempfile.mkdtemp()
        hub = Hub(data_dir).start()
        try:
            data = random_bytes(8 << 20, seed=21)
            _, h, _ = hub.tus_create(len(data), {"filename": "big.mp4"})
            loc = h["location"]
            c = hub.open_patch(loc, 0, len(data))
            c.send(data[:3 << 20])
            time.sleep(0.3)  # let the hub write what it received
            hub.stop(signal.SIGTERM)
            c.close()
            self.assertEqual(hub.proc.returncode, 0, hub.stderr()[-2000:])
            hub.start()
            status, h, _ = hub.tus_head(loc)
            self.assertEqual(status, 200)
            offset = int(h["upload-offset"])
            self.assertGreater(offset, 0)
            self.assertLessEqual(offset, 3 << 20)
            status, _, _ = hub.tus_patch(loc, offset, data[offset:])
            self.assertEqual(status, 204)
            vid = loc.rsplit("/", 1)[1]
            self.assertEqual(hub.request("GET", f"/media/{vid}/original")[2], data)
        finally:
            hub.cleanup()
            shutil.rmtree(data_dir, ignore_errors=True)


class ConstantMemory(unittest.TestCase):
    def test_a_large_upload_does_not_grow_the_hub(self):
        """A 768 MiB tus PATCH streamed from a generator: the hub's resident size
        stays bounded (it reads 1 MiB at a time straight into the part file)."""
        data_dir = tempfile.mkdtemp()
        hub = Hub(data_dir).start()
        try:
            size = 768 << 20
            _, h, _ = hub.tus_create(size)
            loc = h["location"]
            block = random_bytes(1 << 20, seed=5)
            peak = [0]
            done = threading.Event()

            def sample():
                while not done.is_set():
                    with open(f"/proc/{hub.proc.pid}/status") as f:
                        for line in f:
                            if line.startswith("VmRSS:"):
                                peak[0] = max(peak[0], int(line.split()[1]))
                    time.sleep(0.02)

            t = threading.Thread(target=sample)
            t.start()
            c = hub.open_patch(loc, 0, size)
            for _ in range(size >> 20):
                c.send(block)
            status = c.getresponse().status
            c.close()
            done.set()
            t.join()
            self.assertEqual(status, 204)
            self.assertEqual(hub.tus_head(loc)[1]["upload-offset"], str(size))
            self.assertLess(peak[0], 100 * 1024, f"peak VmRSS {peak[0]} KiB during a {size >> 20} MiB upload")
        finally:
            hub.cleanup()
            shutil.rmtree(data_dir, ignore_errors=True)


@unittest.skipUnless(os.geteuid() == 0, "mounting a small tmpfs needs root")
class StorageFull(unittest.TestCase):
    def test_507_and_the_upload_stays_resumable(self):
        mnt = tempfile.mkdtemp(prefix="hub-full-")
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", mnt], check=True)
        hub = None
        try:
            hub = Hub(mnt).start()
            data = random_bytes(6 << 20, seed=33)
            _, h, _ = hub.tus_create(len(data))
            loc = h["location"]
            status, _, body = hub.tus_patch(loc, 0, data)
            self.assertEqual(status, 507, body)
            self.assertIn(b"full", body.lower())
            status, h, _ = hub.tus_head(loc)
            self.assertEqual(status, 200)
            offset = int(h["upload-offset"])
            subprocess.run(["mount", "-o", "remount,size=64m", mnt], check=True)
            status, _, body = hub.tus_patch(loc, offset, data[offset:])
            self.assertEqual(status, 204, body)
            vid = loc.rsplit("/", 1)[1]
            self.assertEqual(hub.request("GET", f"/media/{vid}/original")[2], data)
        finally:
            if hub:
                hub.cleanup()
            subprocess.run(["umount", "-l", mnt])
            shutil.rmtree(mnt, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
