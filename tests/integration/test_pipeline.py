"""The media pipeline end to end: a real hub, real ffmpeg, tus uploads."""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from hub import Hub, HubTestCase
from test_events import read_events

_clips = {}


def make_clip(seconds, size="640x360"):
    """An H.264/AAC mp4 of testsrc2 + a sine, generated once per process."""
    key = (seconds, size)
    if key not in _clips:
        d = tempfile.mkdtemp(prefix="hub-pipeline-clip-")
        path = os.path.join(d, f"clip-{seconds}.mp4")
        subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25",
                        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", str(seconds),
                        "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-pix_fmt", "yuv420p",
                        "-c:a", "aac", "-movflags", "+faststart", path], check=True)
        with open(path, "rb") as f:
            _clips[key] = f.read()
    return _clips[key]


def video(hub, vid):
    status, v = hub.json("GET", f"/api/videos/{vid}")
    return v if status == 200 else None


def ffmpegs_of(vid):
    found = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if b"ffmpeg" in cmd and vid.encode() in cmd:
            found.append(pid)
    return found


def streams_dir(hub):
    return os.path.join(hub.data_dir, "videos", "streams")


class Pipeline(HubTestCase):
    hub_env = {"MEDIA_WORKERS": "2"}

    def wait_media(self, vid, states, timeout=90):
        def done():
            v = video(self.hub, vid)
            return v if v and v["media_status"] in states else None
        return self.hub.wait_for(done, timeout, f"media_status in {states}")

    def test_upload_becomes_adaptive_hls(self):
        vid = self.hub.upload(make_clip(6), filename="six.mp4")
        v = video(self.hub, vid)
        self.assertEqual(v["status"], "ready")  # the original plays at once
        self.assertIn(v["media_status"], ("queued", "processing", "ready"))
        self.assertEqual(self.hub.request("GET", v["original_url"], headers={"Range": "bytes=0-99"})[0], 206)

        v = self.hub.wait_for(lambda: (lambda x: x if x["hls_url"] and x["thumbnail_url"] else None)(
            video(self.hub, vid)), 60, "hls_url and thumbnail_url")
        v = self.wait_media(vid, ("ready",), 60)
        self.assertEqual(v["progress"], 100)
        self.assertIsNone(v["error"])
        self.assertAlmostEqual(v["media"]["info"]["duration_s"], 6, delta=0.2)
        self.assertEqual((v["media"]["info"]["width"], v["media"]["info"]["height"]), (640, 360))
        self.assertEqual(v["media"]["info"]["video_codec"], "h264")

        status, h, master = self.hub.request("GET", v["hls_url"])
        self.assertEqual(status, 200)
        self.assertEqual(h["content-type"], "application/vnd.apple.mpegurl")
        self.assertEqual(h["cache-control"], "no-cache")
        master = master.decode()
        infs = [l for l in master.splitlines() if l.startswith("#EXT-X-STREAM-INF:")]
        self.assertEqual(len(infs), 2, master)  # 360p (the source's size) and 240p
        for inf in infs:
            self.assertRegex(inf, r"BANDWIDTH=\d+")
            self.assertRegex(inf, r"RESOLUTION=\d+x\d+")
            self.assertRegex(inf, r'CODECS="avc1\.[0-9a-f]{6},mp4a\.40\.2"')
        self.assertIn("RESOLUTION=640x360", master)
        base = v["hls_url"].rsplit("/", 1)[0]
        uris = [l for l in master.splitlines() if l and not l.startswith("#")]
        for uri in uris:
            status, h, pl = self.hub.request("GET", f"{base}/{uri}")
            self.assertEqual(status, 200, uri)
            pl = pl.decode()
            self.assertIn("#EXT-X-ENDLIST", pl)
            segs = [l for l in pl.splitlines() if l and not l.startswith("#")]
            self.assertGreaterEqual(len(segs), 2)
            seg_base = f"{base}/{uri.rsplit('/', 1)[0]}"
            for seg in segs:
                status, h, data = self.hub.request("GET", f"{seg_base}/{seg}")
                self.assertEqual(status, 200, seg)
                self.assertEqual(h["content-type"], "video/mp2t")
                self.assertIn("immutable", h["cache-control"])
                self.assertEqual(data[:1], b"\x47")  # MPEG-TS sync byte
            status, h, part = self.hub.request("GET", f"{seg_base}/{segs[0]}", headers={"Range": "bytes=0-187"})
            self.assertEqual((status, len(part)), (206, 188))

        status, h, jpg = self.hub.request("GET", v["thumbnail_url"])
        self.assertEqual((status, h["content-type"]), (200, "image/jpeg"))
        self.assertEqual(jpg[:2], b"\xff\xd8")
        status, h, vtt = self.hub.request("GET", v["sprite_vtt_url"])
        self.assertEqual(status, 200)
        self.assertTrue(h["content-type"].startswith("text/vtt"))
        self.assertTrue(vtt.startswith(b"WEBVTT"))
        sheet = re.search(rb"(sprite_\d+\.jpg)#xywh=", vtt).group(1).decode()
        self.assertEqual(self.hub.request("GET", f"/media/{vid}/thumbs/{sheet}")[0], 200)

        probe = subprocess.run(["ffprobe", "-v", "error", "-protocol_whitelist", "http,tcp,file,hls",
                                "-show_entries", "stream=codec_name,width,height", "-of", "csv=p=0",
                                f"http://127.0.0.1:{self.hub.port}{v['hls_url']}"],
                               capture_output=True, text=True, timeout=60)
        self.assertEqual(probe.returncode, 0, probe.stderr)
        self.assertIn("h264", probe.stdout)
        self.assertIn("aac", probe.stdout)

    def test_progress_reaches_open_pages(self):
        import threading
        box, result = {}, {}

        def listen():
            result["events"] = read_events(self.hub.port, lambda ev: any(
                e.get("id") == box.get("id") and e.get("video") and e["video"]["media_status"] == "ready"
                for e in ev), timeout=90)

        t = threading.Thread(target=listen)
        t.start()
        time.sleep(0.3)
        box["id"] = self.hub.upload(make_clip(20), filename="live.mp4")
        t.join(100)
        seen = [e["video"] for e in result["events"] if e.get("id") == box["id"] and e.get("video")]
        states = [v["media_status"] for v in seen]
        self.assertIn("processing", states)
        self.assertEqual(states[-1], "ready")
        progress = [v["progress"] for v in seen if v["media_status"] == "processing" and v["progress"]]
        self.assertTrue(any(0 < p < 100 for p in progress), seen)
        self.assertEqual(progress, sorted(progress))  # never backwards
        self.assertTrue(any(v["hls_url"] for v in seen if v["media_status"] == "processing"),
                        "the stream copy plays before the ladder is done")

    def test_paths_outside_published_files_are_404(self):
        vid = self.hub.upload(make_clip(6), filename="paths.mp4")
        self.wait_media(vid, ("ready",), 60)
        hls = os.path.join(streams_dir(self.hub), vid, "hls")
        os.makedirs(os.path.join(hls, ".work-x-1"), exist_ok=True)
        with open(os.path.join(hls, ".work-x-1", "a.ts"), "wb") as f:
            f.write(b"G" * 188)
        for path in (f"/media/{vid}/hls/.work-x-1/a.ts", f"/media/{vid}/hls/../../{vid}/hls/master.m3u8",
                     f"/media/{vid}/hls/%2e%2e/master.m3u8", f"/media/{vid}/hls/master.txt",
                     f"/media/{vid}/thumbs/..", f"/media/{vid}/thumbs/.dir", "/media/nosuchvideo/hls/master.m3u8",
                     f"/media/{vid}/hls/", f"/media/{vid}/thumbs/ladder%2f240p%2findex.m3u8"):
            # ".." is refused by the HTTP layer itself (400); everything else is not found.
            self.assertIn(self.hub.request("GET", path)[0], (400, 404), path)
            self.assertNotEqual(self.hub.request("GET", path)[0], 200, path)

    def test_text_file_fails_with_a_sentence(self):
        vid = self.hub.upload(b"this is not a video\n" * 100, filename="notes.mp4")
        v = self.wait_media(vid, ("failed",), 60)
        self.assertEqual(v["status"], "ready")  # the original is kept and still served
        self.assertTrue(v["error"].startswith("The file could not be read as a video"), v["error"])
        self.assertIsNone(v["hls_url"])
        self.assertEqual(self.hub.request("GET", v["original_url"])[0], 200)

    def test_delete_during_processing_cancels_and_removes_everything(self):
        vid = self.hub.upload(make_clip(40), filename="long.mp4")
        hls = os.path.join(streams_dir(self.hub), vid, "hls")
        self.hub.wait_for(lambda: os.path.isdir(hls) and any(n.startswith(".work-ladder") for n in os.listdir(hls)),
                          60, "the ladder to start")
        self.hub.json("DELETE", f"/api/videos/{vid}", expect=204)
        self.hub.wait_for(lambda: not os.path.exists(os.path.join(streams_dir(self.hub), vid)), 15,
                          "the streams of the deleted video to go")
        time.sleep(2)  # a killed ffmpeg must not write anything afterwards
        self.assertFalse(os.path.exists(os.path.join(streams_dir(self.hub), vid)))
        self.assertEqual(self.hub.request("GET", f"/media/{vid}/hls/master.m3u8")[0], 404)


class Restart(unittest.TestCase):
    def test_killed_mid_encode_then_restarted_finishes(self):
        data = tempfile.mkdtemp(prefix="hub-data-")
        hub = Hub(data, env={"MEDIA_WORKERS": "1"}).start()
        try:
            vid = hub.upload(make_clip(40), filename="restart.mp4")
            hls = os.path.join(streams_dir(hub), vid, "hls")
            hub.wait_for(lambda: os.path.isdir(hls) and any(n.startswith(".work-ladder") for n in os.listdir(hls)),
                         60, "the ladder to start")
            hub.stop(signal.SIGKILL)
            # Its ffmpeg dies with it (PR_SET_PDEATHSIG), it does not go on writing.
            hub.wait_for(lambda: not ffmpegs_of(vid), 10, "the orphaned ffmpeg to die")
            hub.start()
            # The old claim's lease (30 s) runs out, then the ladder is redone.
            v = hub.wait_for(lambda: (lambda x: x if x and x["media_status"] == "ready" else None)(video(hub, vid)),
                             180, "the restarted hub to finish the ladder")
            self.assertIsNotNone(v["hls_url"])
            self.assertEqual([n for n in os.listdir(hls) if n.startswith(".")], [])
            status, _, master = hub.request("GET", v["hls_url"])
            self.assertEqual(status, 200)
            self.assertIn(b"ladder/", master)
        finally:
            hub.cleanup()
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
