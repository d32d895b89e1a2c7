"""Two hub processes on one data directory: the shared storage is the truth."""
import threading
import time
import unittest

from hub import TwoHubsTestCase, random_bytes


class TwoProcesses(TwoHubsTestCase):
    def test_second_process_continues_an_upload_the_first_started(self):
        data = random_bytes(5 << 20, seed=40)
        _, h, _ = self.a.tus_create(len(data), {"filename": "shared.mp4", "title": "Shared"})
        loc = h["location"]
        self.assertEqual(self.a.tus_patch(loc, 0, data[:2 << 20])[0], 204)
        status, h, _ = self.b.tus_head(loc)
        self.assertEqual((status, h["upload-offset"]), (200, str(2 << 20)))
        self.assertEqual(self.b.tus_patch(loc, 2 << 20, data[2 << 20:])[0], 204)
        vid = loc.rsplit("/", 1)[1]
        self.assertEqual(self.a.request("GET", f"/media/{vid}/original")[2], data)
        # Both list it, ready, without being told (the other by its rescan).
        for hub in (self.a, self.b):
            hub.wait_for(lambda: any(v["id"] == vid and v["status"] == "ready"
                                     for v in hub.json("GET", "/api/videos?limit=100", auth=False)[1]["items"]),
                         what=f"video listed on {hub.port}")

    def test_racing_patches_on_two_processes(self):
        data = random_bytes(3 << 20, seed=41)
        other = random_bytes(3 << 20, seed=42)
        _, h, _ = self.a.tus_create(len(data))
        loc = h["location"]
        results = {}

        def send(hub, payload, key):
            c = hub.open_patch(loc, 0, len(payload))
            try:
                for i in range(0, len(payload), 256 << 10):
                    c.send(payload[i:i + (256 << 10)])
                    time.sleep(0.01)
            except OSError:
                pass
            try:
                results[key] = c.getresponse().status
            except OSError as e:
                results[key] = repr(e)
            c.close()

        ta = threading.Thread(target=send, args=(self.a, data, "a"))
        tb = threading.Thread(target=send, args=(self.b, other, "b"))
        ta.start(); time.sleep(0.05); tb.start()
        ta.join(); tb.join()
        self.assertEqual(sorted(results.values(), key=str), [204, 409], results)
        winner = data if results["a"] == 204 else other
        vid = loc.rsplit("/", 1)[1]
        self.assertEqual(self.b.request("GET", f"/media/{vid}/original")[2], winner)

    def test_edits_on_one_process_show_on_the_other(self):
        vid = self.a.upload(random_bytes(1000, seed=43), title="before")
        self.b.json("PATCH", f"/api/videos/{vid}", {"title": "after"}, expect=200)
        self.assertEqual(self.a.json("GET", f"/api/videos/{vid}", auth=False)[1]["title"], "after")
        self.a.wait_for(lambda: any(v["title"] == "after" for v in
                                    self.a.json("GET", "/api/videos?q=after", auth=False)[1]["items"]),
                        what="rescan picks up the other process's edit")
        self.assertEqual(self.b.request("DELETE", f"/api/videos/{vid}", auth=True)[0], 204)
        self.assertEqual(self.a.request("GET", f"/media/{vid}/original")[0], 404)


if __name__ == "__main__":
    unittest.main()
