"""Faults of the media pipeline end to end (issue 3, item 7): real hubs, real ffmpeg.

ffmpeg running past MEDIA_JOB_TIMEOUT_S, STREAMS_DIR full while encoding, two hubs on one
data directory, and the malformed files of item 1. (ffmpeg killed mid-job and a video deleted
while it is encoded are in test_pipeline.py.)
"""
import glob
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from hub import Hub

_clips = {}


def make_clip(name, args):
    """A clip generated once per process with ffmpeg from lavfi sources."""
    if name not in _clips:
        d = tempfile.mkdtemp(prefix="hub-faults-clip-")
        path = os.path.join(d, name)
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y"] + args + [path], check=True)
        with open(path, "rb") as f:
            _clips[name] = f.read()
        shutil.rmtree(d, ignore_errors=True)
    return _clips[name]


def h264_clip(seconds, size, faststart=True):
    return make_clip(f"h264-{seconds}-{size}-{faststart}.mp4", [
        "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", str(seconds),
        "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-pix_fmt", "yuv420p", "-c:a", "aac"]
        + (["-movflags", "+faststart"] if faststart else []))


def mpeg4_clip(seconds, size):
    """MPEG-4 part 2: decodable, but not packaged by stream copy (only the ladder writes HLS)."""
    return make_clip(f"mpeg4-{seconds}-{size}.mp4", [
        "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", str(seconds),
        "-c:v", "mpeg4", "-q:v", "8", "-c:a", "aac"])


def audio_only_clip():
    return make_clip("audio.m4a", ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "3",
                                   "-c:a", "aac"])


def video(hub, vid):
    status, v = hub.json("GET", f"/api/videos/{vid}")
    return v if status == 200 else None


def wait_media(hub, vid, states, timeout):
    def done():
        v = video(hub, vid)
        return v if v and v["media_status"] in states else None
    return hub.wait_for(done, timeout, f"{vid} media_status in {states}")


def streams_dir(hub):
    return hub.env.get("STREAMS_DIR") or os.path.join(hub.data_dir, "videos", "streams")


def job_dir(hub, vid, kind):
    return os.path.join(streams_dir(hub), ".jobs", f"{vid}.{kind}")


def attempts(hub, vid, kind):
    out = {}
    for p in glob.glob(os.path.join(job_dir(hub, vid, kind), "attempts", "*.json")):
        try:
            with open(p) as f:
                out[int(os.path.basename(p).split(".")[0])] = json.load(f)
        except (OSError, ValueError):
            pass  # being written
    return out


def children(pid):
    """(pid, comm) of the live processes whose parent is pid."""
    found = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] != "Z" and int(fields[1]) == pid:
            found.append((int(p), comm))
    return found


def processes_mentioning(text):
    found = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if b"ffmpeg" in cmd and text.encode() in cmd:
            found.append(int(p))
    return found


def check_master(test, hub, vid):
    """master.m3u8 is served and every playlist it lists exists, ends, and has its segments."""
    status, _, master = hub.request("GET", f"/media/{vid}/hls/master.m3u8")
    test.assertEqual(status, 200)
    uris = [l for l in master.decode().splitlines() if l and not l.startswith("#")]
    test.assertTrue(uris, master)
    for uri in uris:
        status, _, pl = hub.request("GET", f"/media/{vid}/hls/{uri}")
        test.assertEqual(status, 200, uri)
        test.assertIn(b"#EXT-X-ENDLIST", pl)
        base = uri.rsplit("/", 1)[0]
        for seg in [l for l in pl.decode().splitlines() if l and not l.startswith("#")]:
            test.assertEqual(hub.request("GET", f"/media/{vid}/hls/{base}/{seg}", headers={"Range": "bytes=0-0"})[0],
                             206, seg)
    return master


class Hanging(unittest.TestCase):
    """An ffmpeg that runs past MEDIA_JOB_TIMEOUT_S (its minimum, 10 s) is killed, with its
    whole process group; the ladder is retried (3 attempts, 10 s then 20 s backoff) and the
    video ends failed with the reason."""

    def test_timeout_kills_ffmpeg_and_fails_with_the_reason(self):
        # 1080p MPEG-4 (no stream copy): its 1080p x264 ladder takes well over 10 s here.
        clip = mpeg4_clip(20, "1920x1080")
        data = tempfile.mkdtemp(prefix="hub-data-")
        hub = Hub(data, env={"MEDIA_WORKERS": "1", "MEDIA_JOB_TIMEOUT_S": "10", "MEDIA_LADDER": "1080"}).start()
        try:
            vid = hub.upload(clip, filename="slow.mp4")
            hub.wait_for(lambda: 1 in attempts(hub, vid, "ladder"), 60, "the first ladder attempt to time out")
            first = attempts(hub, vid, "ladder")[1]
            self.assertIn("timed out after 10 s", first["error"])
            # Between attempts (10 s backoff) nothing of it runs: no ffmpeg child, no stray
            # of its process group writing into STREAMS_DIR.
            time.sleep(0.5)
            self.assertEqual([c for c in children(hub.proc.pid) if "ffmpeg" in c[1]], [])
            self.assertEqual(processes_mentioning(vid), [])
            v = video(hub, vid)
            self.assertIn(v["media_status"], ("queued", "processing"))  # retried, not failed yet
            self.assertIsNotNone(v["thumbnail_url"])
            hls = os.path.join(streams_dir(hub), vid, "hls")
            self.assertFalse(os.path.exists(os.path.join(hls, "ladder")))
            v = wait_media(hub, vid, ("failed",), 90)
            self.assertEqual(sorted(attempts(hub, vid, "ladder")), [1, 2, 3])
            self.assertTrue(v["error"].startswith("The video could not be converted for streaming"), v["error"])
            self.assertIn("timed out", v["error"])
            self.assertIsNone(v["hls_url"])
            self.assertEqual(hub.request("GET", f"/media/{vid}/original", headers={"Range": "bytes=0-9"})[0], 206)
            time.sleep(0.3)
            self.assertEqual([c for c in children(hub.proc.pid) if "ffmpeg" in c[1]], [])
            self.assertEqual(processes_mentioning(vid), [])
            self.assertEqual([n for n in os.listdir(hls) if n.startswith(".work")] if os.path.isdir(hls) else [], [])
        finally:
            hub.cleanup()
            shutil.rmtree(data, ignore_errors=True)


@unittest.skipUnless(os.geteuid() == 0, "mounting a small tmpfs needs root")
class DiskFull(unittest.TestCase):
    """STREAMS_DIR on a tmpfs with room for the job records and posters but not the ladder."""

    def test_ladder_fails_cleanly_then_the_retry_finishes(self):
        clip = mpeg4_clip(8, "640x360")  # no stream copy: the ladder is the only HLS writer
        mnt = tempfile.mkdtemp(prefix="hub-streams-full-")
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", mnt], check=True)
        data = tempfile.mkdtemp(prefix="hub-data-")
        hub = None
        try:
            hub = Hub(data, env={"MEDIA_WORKERS": "1", "STREAMS_DIR": mnt, "MEDIA_LADDER": "360,240"}).start()
            other = hub.upload(b"\x00" * 10, filename="other.bin")  # an unrelated, failing video
            vid = hub.upload(clip, filename="full.mp4")
            hub.wait_for(lambda: 1 in attempts(hub, vid, "ladder"), 60, "the first ladder attempt to fail")
            err = attempts(hub, vid, "ladder")[1]["error"]
            # ffmpeg's HLS muxer exits 0 after ENOSPC and says nothing; the pipeline finds out.
            self.assertIn("storage (STREAMS_DIR) is full", err)
            v = video(hub, vid)
            self.assertIn(v["media_status"], ("queued", "processing"))  # it will be retried
            # Nothing half-written visible: no work dir left, no ladder, no master.
            hls = os.path.join(mnt, vid, "hls")
            self.assertEqual(os.listdir(hls) if os.path.isdir(hls) else [], [])
            self.assertEqual(hub.request("GET", f"/media/{vid}/hls/master.m3u8")[0], 404)
            self.assertEqual(hub.request("GET", f"/media/{vid}/original")[2], clip)
            self.assertEqual(hub.request("GET", "/healthz")[0], 200)
            # Room again: the retry after the 10 s backoff finishes.
            subprocess.run(["mount", "-o", "remount,size=64m", mnt], check=True)
            v = wait_media(hub, vid, ("ready",), 60)
            self.assertEqual(sorted(attempts(hub, vid, "ladder")), [1])
            self.assertEqual(v["media"]["renditions"], ["360p", "240p"])
            check_master(self, hub, vid)
            self.assertEqual([n for n in os.listdir(hls) if n.startswith(".")], [])
            self.assertEqual(video(hub, other)["media_status"], "failed")
        finally:
            if hub:
                hub.cleanup()
            subprocess.run(["umount", "-l", mnt])
            shutil.rmtree(mnt, ignore_errors=True)
            shutil.rmtree(data, ignore_errors=True)


class TwoHubs(unittest.TestCase):
    """Two hubs on one data directory, one worker each: every job runs once, on one of them."""

    def test_each_job_claimed_once(self):
        data = tempfile.mkdtemp(prefix="hub-shared-")
        env = {"MEDIA_WORKERS": "1", "MEDIA_LADDER": "360,240"}
        a = Hub(data, "a", env=env).start()
        b = Hub(data, "b", env=env).start()
        try:
            vids = [a.upload(h264_clip(6, "640x360"), filename="shared1.mp4"),
                    b.upload(mpeg4_clip(8, "640x360"), filename="shared2.mp4")]
            for vid in vids:
                v = wait_media(a, vid, ("ready",), 90)
                self.assertIsNotNone(v["hls_url"])
            jobs = os.path.join(streams_dir(a), ".jobs")
            kinds = {}
            for vid in vids:
                for jd in glob.glob(os.path.join(jobs, vid + ".*")):
                    kind = jd.rsplit(".", 1)[1]
                    kinds.setdefault(vid, set()).add(kind)
                    self.assertEqual(os.listdir(os.path.join(jd, "claims")), ["1"], jd)  # never taken over
                    self.assertEqual(os.listdir(os.path.join(jd, "attempts")) if os.path.isdir(
                        os.path.join(jd, "attempts")) else [], [], jd)
                    with open(os.path.join(jd, "done.json")) as f:
                        done = json.load(f)
                    self.assertTrue(done["ok"], done)
            self.assertEqual(kinds[vids[0]], {"probe", "copy", "thumbnails", "ladder"})
            self.assertEqual(kinds[vids[1]], {"probe", "thumbnails", "ladder"})
            for vid in vids:
                master = check_master(self, a, vid)
                self.assertEqual(b.request("GET", f"/media/{vid}/hls/master.m3u8")[2], master)
                self.assertIn(b"ladder/360p/index.m3u8", master)
                self.assertIn(b"ladder/240p/index.m3u8", master)
                wait_media(b, vid, ("ready",), 15)
        finally:
            a.cleanup()
            b.cleanup()
            shutil.rmtree(data, ignore_errors=True)


class Malformed(unittest.TestCase):
    """Each bad file ends failed with a sentence; its original is kept; a good video is unaffected."""

    @classmethod
    def setUpClass(cls):
        cls.data = tempfile.mkdtemp(prefix="hub-data-")
        cls.hub = Hub(cls.data, env={"MEDIA_WORKERS": "2", "MEDIA_MAX_HEIGHT": "240",
                                     "MEDIA_MAX_DURATION_S": "2"}).start()

    @classmethod
    def tearDownClass(cls):
        cls.hub.cleanup()
        shutil.rmtree(cls.data, ignore_errors=True)

    def upload_zero_length(self):
        status, h, _ = self.hub.tus_create(0, {"filename": "empty.mp4", "title": "empty"})
        self.assertEqual(status, 201)
        vid = h["location"].rsplit("/", 1)[1]
        status, _, _ = self.hub.tus_head(h["location"])
        if status == 200:  # tus: a 0-byte upload is complete at creation; an empty PATCH is harmless
            self.hub.tus_patch(h["location"], 0, b"")
        return vid

    def test_malformed_files_fail_with_a_sentence(self):
        hub = self.hub
        half = h264_clip(4, "320x240", faststart=False)
        whole = h264_clip(1.8, "320x240")  # +faststart: the index survives the cut
        cases = {
            "zero": (self.upload_zero_length(), b"", "could not be read as a video"),
            "truncated": (hub.upload(half[:len(half) // 2], filename="cut.mp4"), half[:len(half) // 2],
                          "could not be read as a video"),
            "cut_after_index": (hub.upload(whole[:len(whole) // 2], filename="cut2.mp4"),
                                whole[:len(whole) // 2], "incomplete"),
            "audio": (hub.upload(audio_only_clip(), filename="song.m4a"), audio_only_clip(), "no video track"),
            "tall": (hub.upload(h264_clip(1, "640x360"), filename="tall.mp4"), h264_clip(1, "640x360"), "240p"),
            "long": (hub.upload(h264_clip(4, "320x240"), filename="long.mp4"), h264_clip(4, "320x240"), "long"),
        }
        good_clip = h264_clip(1.5, "320x240")
        good = hub.upload(good_clip, filename="good.mp4")
        for name, (vid, original, keyword) in cases.items():
            with self.subTest(name):
                v = wait_media(hub, vid, ("failed",), 60)
                self.assertEqual(v["status"], "ready")
                self.assertIsInstance(v["error"], str)
                self.assertTrue(v["error"].startswith("The "), v["error"])
                self.assertTrue(v["error"].rstrip().endswith("."), v["error"])
                self.assertIn(keyword, v["error"])
                self.assertIsNone(v["hls_url"])
                status, _, body = hub.request("GET", f"/media/{vid}/original")
                self.assertEqual((status, body), (200, original))
                # Unplayable is permanent: one attempt, no retry.
                self.assertEqual(sorted(attempts(hub, vid, "probe")), [1])
        v = wait_media(hub, good, ("ready",), 60)
        self.assertIsNone(v["error"])
        check_master(self, hub, good)
        self.assertIn("360p (640x360)", video(hub, cases["tall"][0])["error"])


if __name__ == "__main__":
    unittest.main()
