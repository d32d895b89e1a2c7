"""Server-sent events: open pages hear of changes on this node and on others."""
import json
import socket
import time
import unittest

from hub import TwoHubsTestCase, random_bytes


def read_events(port, stop_when, timeout=15):
    """Reads /api/events until stop_when(events) is true; returns the events."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(b"GET /api/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
    buf, events = b"", []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not stop_when(events):
            s.settimeout(max(0.1, deadline - time.monotonic()))
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
            for line in buf.split(b"\n"):
                if line.startswith(b"data: "):
                    try:
                        events.append(json.loads(line[6:]))
                    except ValueError:
                        pass  # a data line cut by the chunk boundary; seen again below
            # keep only the unfinished tail
            buf = buf[buf.rfind(b"\n") + 1:]
    except socket.timeout:
        pass
    finally:
        s.close()
    return events


class Events(TwoHubsTestCase):
    def test_stream_headers(self):
        s = socket.create_connection(("127.0.0.1", self.a.port), timeout=5)
        s.sendall(b"GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n")
        head = s.recv(4096).split(b"\r\n\r\n")[0].lower()
        s.close()
        self.assertIn(b"200", head.split(b"\r\n")[0])
        self.assertIn(b"content-type: text/event-stream", head)

    def test_changes_on_another_process_reach_open_pages(self):
        import threading
        result = {}
        vid_box = {}

        def listen():
            result["events"] = read_events(self.a.port, lambda ev: any(
                e.get("id") == vid_box.get("id") and e.get("video") and e["video"]["title"] == "elsewhere"
                for e in ev))

        t = threading.Thread(target=listen)
        t.start()
        time.sleep(0.3)
        vid_box["id"] = self.b.upload(random_bytes(500, seed=7), title="elsewhere")
        t.join(20)
        matching = [e for e in result["events"] if e.get("id") == vid_box["id"]]
        self.assertTrue(matching, result["events"])
        self.assertEqual(matching[-1]["video"]["status"], "ready")

    def test_deletes_are_announced(self):
        import threading
        vid = self.a.upload(random_bytes(500, seed=8), title="to delete")
        result = {}
        t = threading.Thread(target=lambda: result.setdefault("events", read_events(
            self.a.port, lambda ev: any(e.get("id") == vid and e.get("deleted") for e in ev))))
        t.start()
        time.sleep(0.3)
        self.assertEqual(self.a.request("DELETE", f"/api/videos/{vid}", auth=True)[0], 204)
        t.join(20)
        self.assertTrue(any(e.get("id") == vid and e["deleted"] for e in result["events"]), result["events"])


if __name__ == "__main__":
    unittest.main()
