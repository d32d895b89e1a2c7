"""Watching: the original served with full HTTP range support."""
import subprocess
import unittest

from hub import HubTestCase, random_bytes, test_clip


class Media(HubTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.data = random_bytes(1_000_000, seed=5)
        cls.vid = cls.hub.upload(cls.data, filename="movie.mp4")
        cls.url = f"/media/{cls.vid}/original"

    def get(self, headers=None, method="GET"):
        return self.hub.request(method, self.url, headers=headers or {})

    def test_full_body_with_validators(self):
        status, h, body = self.get()
        self.assertEqual(status, 200)
        self.assertEqual(body, self.data)
        self.assertEqual(h["accept-ranges"], "bytes")
        self.assertEqual(h["content-type"], "video/mp4")
        self.assertEqual(h["content-length"], str(len(self.data)))
        self.assertTrue(h["etag"].startswith('"'))
        self.assertIn("last-modified", h)

    def test_head(self):
        status, h, body = self.get(method="HEAD")
        self.assertEqual(status, 200)
        self.assertEqual(body, b"")
        self.assertEqual(h["content-length"], str(len(self.data)))

    def test_ranges(self):
        n = len(self.data)
        for rng, first, last in (("bytes=0-99", 0, 99), ("bytes=500000-", 500000, n - 1),
                                 ("bytes=-100", n - 100, n - 1), ("bytes=999990-2000000", 999990, n - 1)):
            status, h, body = self.get({"Range": rng})
            self.assertEqual(status, 206, rng)
            self.assertEqual(h["content-range"], f"bytes {first}-{last}/{n}")
            self.assertEqual(body, self.data[first:last + 1])

    def test_multiple_ranges_are_multipart(self):
        status, h, body = self.get({"Range": "bytes=0-9,100-109"})
        self.assertEqual(status, 206)
        self.assertTrue(h["content-type"].startswith("multipart/byteranges; boundary="))
        self.assertIn(self.data[0:10], body)
        self.assertIn(self.data[100:110], body)
        self.assertEqual(int(h["content-length"]), len(body))

    def test_unsatisfiable_is_416_with_star(self):
        status, h, _ = self.get({"Range": f"bytes={len(self.data)}-"})
        self.assertEqual(status, 416)
        self.assertEqual(h["content-range"], f"bytes */{len(self.data)}")

    def test_malformed_range_gets_full_body(self):
        for rng in ("bytes=abc", "items=0-1", "bytes=5-1", "bytes", "bytes=--1"):
            status, _, body = self.get({"Range": rng})
            self.assertEqual(status, 200, rng)
            self.assertEqual(len(body), len(self.data))

    def test_conditional_requests(self):
        _, h, _ = self.get(method="HEAD")
        etag, lm = h["etag"], h["last-modified"]
        self.assertEqual(self.get({"If-None-Match": etag})[0], 304)
        self.assertEqual(self.get({"If-None-Match": '"other"'})[0], 200)
        self.assertEqual(self.get({"If-Modified-Since": lm})[0], 304)
        status, _, body = self.get({"Range": "bytes=0-9", "If-Range": etag})
        self.assertEqual((status, body), (206, self.data[:10]))
        status, _, body = self.get({"Range": "bytes=0-9", "If-Range": '"stale"'})
        self.assertEqual(status, 200)
        self.assertEqual(len(body), len(self.data))
        status, _, _ = self.get({"Range": "bytes=0-9", "If-Range": lm})
        self.assertEqual(status, 206)

    def test_unknown_video_is_404(self):
        self.assertEqual(self.hub.request("GET", "/media/nope/original")[0], 404)

    def test_a_real_clip_is_seekable_by_ffprobe_over_http(self):
        with open(test_clip(), "rb") as f:
            clip = f.read()
        vid = self.hub.upload(clip, filename="clip.mp4")
        url = f"http://127.0.0.1:{self.hub.port}/media/{vid}/original"
        out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", url],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertAlmostEqual(float(out.stdout.strip()), 4.0, delta=0.2)
        # ffmpeg seeks with range requests: decode one frame at 3 s.
        out = subprocess.run(["ffmpeg", "-v", "error", "-ss", "3", "-i", url, "-frames:v", "1", "-f", "null", "-"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)


if __name__ == "__main__":
    unittest.main()
