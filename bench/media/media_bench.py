"""Driver of bench/media/run.sh (read that file's header first). Not a test.

Talks to a running hub (started by run.sh with bench/media/ffwrap.sh first in its PATH, so that
every ffmpeg/ffprobe argv it runs is recorded) and measures, in one run:
  (a) the pipeline (tus upload complete -> media_status ready) against the same recorded commands
      run by hand, one after the other, wall and CPU;
  (b) upload complete -> first playable (hls_url set and the master playlist lists a rendition);
  (c) the pipeline's time to the full ladder against the single-pass multi-output command an
      operator would write (one decode, split, every rendition, one HLS muxer, -var_stream_map),
      with the pipeline's own x264 preset, bitrates, VBV, profiles, levels, GOP and keyframes.
Prints a table and writes the raw figures as JSON.
"""
import argparse
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time

HZ = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"[media-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def proc_times(pid):
    """(utime+stime, cutime+cstime) of a process in seconds; c* counts reaped children only."""
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    ut, st, cut, cst = (int(x) for x in fields[11:15])
    return (ut + st) / HZ, (cut + cst) / HZ


def machine_busy():
    """Seconds of CPU the whole machine spent not idle (all cores)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return (sum(v) - v[3] - v[4]) / HZ


def children(pid):
    out = []
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/children") as f:
                out += f.read().split()
        except OSError:
            pass
    return out


def self_children_cpu():
    r = os.times()
    return r.children_user + r.children_system


class Hub:
    def __init__(self, port, token, pid, streams_root):
        self.port, self.token, self.pid, self.streams_root = port, token, pid, streams_root

    def request(self, method, path, body=None, headers=None, timeout=600):
        h = {"Authorization": "Bearer " + self.token}
        h.update(headers or {})
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        c.connect()
        # tus bodies come from a file: send it in 1 MiB pieces, not http.client's 8 KiB.
        c.sock.setsockopt(6, 1, 1)  # TCP_NODELAY
        try:
            if hasattr(body, "read"):
                c.putrequest(method, path)
                for k, v in h.items():
                    c.putheader(k, v)
                c.endheaders()
                while True:
                    b = body.read(1 << 20)
                    if not b:
                        break
                    c.send(b)
            else:
                c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def video(self, vid):
        status, _, data = self.request("GET", f"/api/videos/{vid}")
        return json.loads(data) if status == 200 else None

    def upload(self, path):
        """tus: creation, then one PATCH of the whole file. Returns (id, monotonic time at which
        the final PATCH was answered)."""
        size = os.path.getsize(path)
        import base64
        md = "filename " + base64.b64encode(os.path.basename(path).encode()).decode()
        status, h, body = self.request("POST", "/files/", headers={
            "Tus-Resumable": "1.0.0", "Upload-Length": str(size), "Upload-Metadata": md})
        if status != 201:
            raise RuntimeError(f"tus creation: {status} {body[:200]!r}")
        loc = h["location"]
        with open(path, "rb") as f:
            status, _, body = self.request("PATCH", loc, body=f, headers={
                "Tus-Resumable": "1.0.0", "Upload-Offset": "0", "Content-Length": str(size),
                "Content-Type": "application/offset+octet-stream"})
        done = time.monotonic()
        if status != 204:
            raise RuntimeError(f"tus PATCH: {status} {body[:200]!r}")
        return loc.rsplit("/", 1)[1], done

    def playable(self, v):
        """The master playlist behind hls_url lists at least one rendition."""
        if not v or not v.get("hls_url"):
            return False
        status, _, m = self.request("GET", v["hls_url"])
        if status != 200:
            return False
        lines = m.decode("utf-8", "replace").splitlines()
        return any(l.startswith("#EXT-X-STREAM-INF") for l in lines) and \
            any(l and not l.startswith("#") for l in lines)

    def wait_idle(self, timeout=60):
        """No ffmpeg/ffprobe of the hub is running (e.g. after a delete killed one)."""
        deadline = time.monotonic() + timeout
        while children(self.pid):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the hub still has children {children(self.pid)}")
            time.sleep(0.05)

    def delete(self, vid):
        status, _, body = self.request("DELETE", f"/api/videos/{vid}")
        if status != 204:
            raise RuntimeError(f"DELETE {vid}: {status} {body[:200]!r}")


def job_spans(log_path, vid):
    """{kind: [start, end]} as Unix times, from the hub's info lines (its log clock is the
    machine's local time, millisecond resolution)."""
    spans = {}
    pat = re.compile(r"^\[(\d+-\d+-\d+ \d+:\d+:\d+)(\.\d+)\].*media: " + re.escape(vid) +
                     r"\.(\w+) (?:attempt \d+ )?(started|done)")
    with open(log_path, errors="replace") as f:
        for line in f:
            m = pat.search(line)
            if not m:
                continue
            t = time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")) + float(m.group(2))
            s = spans.setdefault(m.group(3), [None, None])
            s[0 if m.group(4) == "started" else 1] = t
    return spans


def durations(spans):
    return {k: (v[1] - v[0]) if None not in v else None for k, v in spans.items()}


def gaps(spans, t0, t1):
    """Where the pipeline's wall time went besides running jobs: upload complete -> first job,
    between jobs (one worker: they run one after the other), last job -> ready seen by a client
    polling every 0.1 s."""
    ordered = sorted((v for v in spans.values() if None not in v), key=lambda v: v[0])
    if not ordered:
        return {}
    between = sum(max(0.0, b[0] - a[1]) for a, b in zip(ordered, ordered[1:]))
    return {"to_first_job": ordered[0][0] - t0, "between_jobs": between, "after_last_job": t1 - ordered[-1][1]}


QUIET = {"budget": float(os.environ.get("BENCH_QUIET_BUDGET", 120)), "spent": 0.0}


def wait_quiet(max_wait=20.0, threshold=0.25):
    """Waits (at most max_wait s, QUIET['budget'] s per invocation) for a second in which the
    machine used less than `threshold` cores, so that a measurement does not start on top of
    someone else's compile. Measures anyway when the machine stays busy."""
    start = time.monotonic()
    while time.monotonic() - start < max_wait and QUIET["spent"] < QUIET["budget"]:
        b0 = machine_busy()
        time.sleep(1)
        if machine_busy() - b0 < threshold:
            return True
        QUIET["spent"] += 1
    return False


def read_argvs(dirpath):
    cmds = []
    for name in sorted(os.listdir(dirpath)):
        with open(os.path.join(dirpath, name), "rb") as f:
            parts = f.read().split(b"\0")[:-1]
        cmds.append([p.decode() for p in parts])
    return cmds


def pipeline_run(hub, src, argv_dir, hub_log):
    """Upload `src`, wait for media_status ready. Wall from the final PATCH's answer; CPU = the
    hub's own (from then on) + its reaped children (everything it ran for this video)."""
    hub.wait_idle()
    for n in os.listdir(argv_dir):
        os.remove(os.path.join(argv_dir, n))
    wait_quiet()
    load = loadavg()
    _, child0 = proc_times(hub.pid)
    busy0 = machine_busy()
    vid, t0 = hub.upload(src)
    self0, _ = proc_times(hub.pid)
    epoch0 = time.time()
    first_playable = None
    while True:
        v = hub.video(vid)
        now = time.monotonic()
        if first_playable is None and hub.playable(v):
            first_playable = now - t0
        if v and v.get("media_status") == "ready":
            t1 = now
            break
        if v and v.get("media_status") == "failed":
            raise RuntimeError(f"the pipeline failed {vid}: {v.get('error')}")
        if now - t0 > 3600:
            raise RuntimeError("the pipeline took more than an hour")
        time.sleep(0.1)
    self1, child1 = proc_times(hub.pid)
    busy1 = machine_busy()
    epoch1 = epoch0 + (t1 - t0)
    cmds = read_argvs(argv_dir)
    spans = job_spans(hub_log, vid)
    cpu = (self1 - self0) + (child1 - child0)
    return {
        "vid": vid, "wall": t1 - t0, "cpu": cpu, "cpu_hub_self": self1 - self0,
        "cpu_children": child1 - child0, "first_playable": first_playable, "load": load,
        "other": max(0.0, (busy1 - busy0) - cpu) / (t1 - t0), "cmds": cmds,
        "jobs": durations(spans), "gaps": gaps(spans, epoch0, epoch1),
        "ladder_start": spans["ladder"][0] - epoch0 if spans.get("ladder", [None])[0] else None,
    }


def polling_baseline(hub, vid, seconds=10.0):
    """The hub's own CPU per second under the same client polling as pipeline_run (GET the
    video every 0.1 s), with no job running: the part of its CPU that is the benchmark's."""
    hub.wait_idle()
    self0, _ = proc_times(hub.pid)
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        hub.video(vid)
        time.sleep(0.1)
    self1, _ = proc_times(hub.pid)
    return (self1 - self0) / (time.monotonic() - t0)


def run_timed(argv, real, label):
    """Runs argv (argv[0] a bare program name) under /usr/bin/time. -> (wall, user+sys)."""
    tf = f"/tmp/media-bench-time.{os.getpid()}"
    r = subprocess.run(["/usr/bin/time", "-f", "%e %U %S", "-o", tf, real[argv[0]]] + argv[1:],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise RuntimeError(f"{label} exited {r.returncode}: {r.stderr[-1000:].decode(errors='replace')}\n"
                           f"argv: {argv}")
    with open(tf) as f:
        e, u, s = (float(x) for x in f.read().split()[-3:])
    os.remove(tf)
    return e, u + s


def kind_of(argv):
    a = " ".join(argv)
    if argv[0] == "ffprobe":
        return "tail probe" if "-read_intervals" in a else "probe"
    if "libx264" in a:
        return "ladder"
    if "-c copy" in a:
        return "copy"
    if "thumbnail=" in a:
        return "poster"
    if "tile=" in a:
        return "sprite"
    return "other"


def hand_run(cmds, vid, streams_root, out_dir, real):
    """The pipeline's commands, in the same order, outputs moved under out_dir."""
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    prefix = f"{streams_root}/{vid}/"
    argvs = []
    for argv in cmds:
        a = [x.replace(prefix, out_dir + "/") for x in argv]
        for x in a:
            if x.startswith(out_dir + "/"):
                os.makedirs(os.path.dirname(x), exist_ok=True)
        argvs.append(a)
    wait_quiet()
    load = loadavg()
    busy0, ch0 = machine_busy(), self_children_cpu()
    t0 = time.monotonic()
    per = []
    for a in argvs:
        e, c = run_timed(a, real, kind_of(a))
        per.append((kind_of(a), e, c))
    wall = time.monotonic() - t0
    ours = self_children_cpu() - ch0
    other = max(0.0, (machine_busy() - busy0) - ours) / wall
    return {"wall": wall, "cpu": sum(p[2] for p in per), "per": per, "load": load, "other": other}


def operator_cmd(ladder_argv, out_dir):
    """The one command a skilled operator would write for the same ladder: one decode, split,
    scale, libx264 + AAC per rendition, one hls muxer with -var_stream_map and a master playlist.
    Every encoder setting is read from the pipeline's own ladder argv."""
    a = ladder_argv
    src = a[a.index("-i") + 1]
    if src.startswith("file:"):
        src = src[5:]
    graph = a[a.index("-filter_complex") + 1]
    sizes = re.findall(r"scale=w=(\d+):h=(\d+)", graph)
    outs = []  # per rendition: {option: value}, in argv order
    i = 0
    while i < len(a):
        if a[i] == "-map" and a[i + 1].startswith("[v"):
            o = {}
            j = i + 2
            while j < len(a) and a[j] != "-f":
                if a[j].startswith("-"):
                    o[a[j]] = a[j + 1]
                    j += 2
                else:
                    j += 1
            # the media playlist path: ".../<name>/index.m3u8" ends the output
            k = j
            while not a[k].endswith(".m3u8"):
                k += 1
            o["name"] = os.path.basename(os.path.dirname(a[k]))
            o["hls_time"] = a[a.index("-hls_time", j) + 1]
            outs.append(o)
            i = k + 1
        else:
            i += 1
    n = len(outs)
    assert n == len(sizes), (n, sizes)
    g = "[0:v:0]split=" + str(n) + "".join(f"[s{i}]" for i in range(n))
    g += "".join(f";[s{i}]scale={w}:{h},setsar=1[v{i}]" for i, (w, h) in enumerate(sizes))
    has_audio = "-c:a" in outs[0]
    cmd = ["ffmpeg", "-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-i", src,
           "-filter_complex", g]
    for i in range(n):
        cmd += ["-map", f"[v{i}]"] + (["-map", "0:a:0"] if has_audio else [])
    o0 = outs[0]
    cmd += ["-c:v", "libx264", "-preset", o0["-preset"], "-pix_fmt", o0["-pix_fmt"], "-g", o0["-g"],
            "-sc_threshold", o0["-sc_threshold"], "-force_key_frames", o0["-force_key_frames"]]
    for i, o in enumerate(outs):
        cmd += [f"-b:v:{i}", o["-b:v"], f"-maxrate:v:{i}", o["-maxrate"], f"-bufsize:v:{i}", o["-bufsize"],
                f"-profile:v:{i}", o["-profile:v"], f"-level:v:{i}", o["-level:v"]]
    if has_audio:
        cmd += ["-c:a", "aac", "-ac", o0["-ac"], "-ar", o0["-ar"]]
        for i, o in enumerate(outs):
            cmd += [f"-b:a:{i}", o["-b:a"]]
    vsm = " ".join(f"v:{i}" + (f",a:{i}" if has_audio else "") + f",name:{o['name']}"
                   for i, o in enumerate(outs))
    cmd += ["-f", "hls", "-hls_time", o0["hls_time"], "-hls_playlist_type", "vod",
            "-hls_flags", "independent_segments", "-hls_segment_filename", f"{out_dir}/%v/seg_%05d.ts",
            "-master_pl_name", "master.m3u8", "-var_stream_map", vsm, f"{out_dir}/%v/index.m3u8"]
    return cmd, [o["name"] for o in outs]


def dir_bytes(d):
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs)


def operator_run(cmd, names, out_dir, real):
    shutil.rmtree(out_dir, ignore_errors=True)
    for n in names:
        os.makedirs(os.path.join(out_dir, n))
    wait_quiet()
    load = loadavg()
    busy0, ch0 = machine_busy(), self_children_cpu()
    t0 = time.monotonic()
    e, c = run_timed(cmd, real, "operator command")
    wall = time.monotonic() - t0
    other = max(0.0, (machine_busy() - busy0) - (self_children_cpu() - ch0)) / wall
    for n in names:
        with open(os.path.join(out_dir, n, "index.m3u8")) as f:
            if "#EXT-X-ENDLIST" not in f.read():
                raise RuntimeError(f"operator output {n} has no EXT-X-ENDLIST")
    return {"wall": wall, "cpu": c, "load": load, "other": other,
            "bytes": {n: dir_bytes(os.path.join(out_dir, n)) for n in names}}


def first_playable_run(hub, src):
    hub.wait_idle()
    wait_quiet(10)
    load = loadavg()
    vid, t0 = hub.upload(src)
    while True:
        v = hub.video(vid)
        if hub.playable(v):
            t = time.monotonic() - t0
            break
        if v and v.get("media_status") == "failed":
            raise RuntimeError(f"{vid} failed: {v.get('error')}")
        if time.monotonic() - t0 > 600:
            raise RuntimeError("no playable rendition after 10 minutes")
        time.sleep(0.05)
    return vid, t, load


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--hub-pid", type=int, required=True)
    ap.add_argument("--hub-log", required=True)
    ap.add_argument("--streams", required=True)
    ap.add_argument("--argv-dir", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--clip", required=True, help="the clip of (a) and (c)")
    ap.add_argument("--fp-clips", nargs="*", default=[], help="label=path for (b)")
    ap.add_argument("--rounds", type=int, default=1, help="rounds of (a) and (c)")
    ap.add_argument("--fp-rounds", type=int, default=3, help="rounds of (b)")
    ap.add_argument("--json", required=True)
    args = ap.parse_args()

    hub = Hub(args.port, args.token, args.hub_pid, args.streams)
    real = {p: shutil.which(p, path=os.environ["FFWRAP_DIR"]) for p in ("ffmpeg", "ffprobe")}
    res = {"fp": {}, "rounds": []}

    # (b) first playable, per length; each video is deleted once playable (its ladder is cancelled).
    for spec in args.fp_clips:
        label, path = spec.split("=", 1)
        res["fp"][label] = []
        for r in range(args.fp_rounds):
            vid, t, load = first_playable_run(hub, path)
            spans = job_spans(args.hub_log, vid)
            hub.delete(vid)
            hub.wait_idle()
            jobs = durations(spans)
            res["fp"][label].append({"t": t, "load": load, "jobs": jobs})
            log(f"(b) {label} round {r + 1}: first playable {t:.2f} s after upload complete "
                f"(probe job {jobs.get('probe') or 0:.2f} s, copy job {jobs.get('copy') or 0:.2f} s; load {load})")

    # (a) + (c): pipeline, the same commands by hand, the operator's command; the order rotates
    # between rounds so that a slow drift in the machine's load does not favour one of them.
    for r in range(args.rounds):
        rnd = {}
        order = ["pipeline", "hand", "operator"]
        if r % 2:
            order = ["operator", "pipeline", "hand"]
        # hand and operator need the pipeline's argv: the first round always starts with it.
        if "cmds" not in res:
            order = ["pipeline"] + [o for o in order if o != "pipeline"]
        for what in order:
            if what == "pipeline":
                p = pipeline_run(hub, args.clip, args.argv_dir, args.hub_log)
                res["cmds"], res["vid"] = p.pop("cmds"), p["vid"]
                rnd["pipeline"] = p
                for root, dirs, _ in os.walk(os.path.join(args.streams, p["vid"], "hls", "ladder")):
                    rnd.setdefault("pipeline_bytes", {})
                    for d in dirs:
                        rnd["pipeline_bytes"][d] = dir_bytes(os.path.join(root, d))
                    break
                if "poll_cpu_per_s" not in res:
                    res["poll_cpu_per_s"] = polling_baseline(hub, p["vid"])
                log(f"(a) round {r + 1}: pipeline {p['wall']:.1f} s wall, {p['cpu']:.1f} s CPU "
                    f"(hub {p['cpu_hub_self']:.2f} s), jobs { {k: round(v or 0, 2) for k, v in p['jobs'].items()} }, "
                    f"gaps { {k: round(v, 2) for k, v in p['gaps'].items()} }, load {p['load']}, other {p['other']:.2f} cores")
                # kept: the commands by hand read its stored original (run.sh removes everything)
            elif what == "hand":
                h = hand_run(res["cmds"], res["vid"], args.streams, os.path.join(args.work, "hand"), real)
                rnd["hand"] = h
                log(f"(a) round {r + 1}: by hand {h['wall']:.1f} s wall, {h['cpu']:.1f} s CPU, "
                    f"{[(k, round(e, 2)) for k, e, _ in h['per']]}, load {h['load']}, other {h['other']:.2f} cores")
            else:
                ladder = next(c for c in res["cmds"] if kind_of(c) == "ladder")
                cmd, names = operator_cmd(ladder, os.path.join(args.work, "operator"))
                res["operator_cmd"] = cmd
                o = operator_run(cmd, names, os.path.join(args.work, "operator"), real)
                rnd["operator"] = o
                log(f"(c) round {r + 1}: operator {o['wall']:.1f} s wall, {o['cpu']:.1f} s CPU, "
                    f"load {o['load']}, other {o['other']:.2f} cores")
        res["rounds"].append(rnd)

    with open(args.json, "w") as f:
        json.dump(res, f, indent=1)
    report(res)


def report(res):
    print()
    print(f"machine: {os.cpu_count()} cores; load average (1 min) noted per figure; 'other' = CPU other "
          f"processes used meanwhile, in cores")
    if res["fp"]:
        print("\n(b) upload complete -> first playable (hls_url + master lists a rendition); goal < 5 s")
        print(f"{'source':>10} {'median':>8} {'runs':>24} {'load':>14}  verdict")
        for label, runs in res["fp"].items():
            ts = [x["t"] for x in runs]
            m = med(ts)
            print(f"{label:>10} {m:7.2f}s {' '.join(f'{t:.2f}' for t in ts):>24} "
                  f"{' '.join(str(x['load']) for x in runs):>14}  {'ok' if m < 5 else 'MISSED by %.2f s' % (m - 5)}")
    rounds = res["rounds"]
    if not rounds:
        return
    P = lambda k: med([r["pipeline"][k] for r in rounds])
    H = lambda k: med([r["hand"][k] for r in rounds])
    O = lambda k: med([r["operator"][k] for r in rounds])
    n = len(rounds)
    poll = res.get("poll_cpu_per_s", 0.0)
    print(f"\n(a) pipeline vs the same commands by hand, 60 s 1080p clip (median of {n}); goal overhead <= 5%")
    print(f"{'':34} {'wall':>8} {'CPU':>8} {'load':>6} {'other':>6}")
    print(f"{'pipeline (upload -> ready)':34} {P('wall'):7.1f}s {P('cpu'):7.1f}s {P('load'):6.2f} {P('other'):6.2f}")
    print(f"{'  hub process itself':34} {'':8} {P('cpu_hub_self'):7.2f}s   (of which this benchmark's polling "
          f"{poll * P('wall'):.2f} s: {poll * 1000:.1f} ms/s measured idle)")
    print(f"{'same commands by hand':34} {H('wall'):7.1f}s {H('cpu'):7.1f}s {H('load'):6.2f} {H('other'):6.2f}")
    rw = [r["pipeline"]["wall"] / r["hand"]["wall"] for r in rounds]
    rc = [r["pipeline"]["cpu"] / r["hand"]["cpu"] for r in rounds]
    print(f"ratio pipeline/hand: wall {med(rw):.3f} ({(med(rw) - 1) * 100:+.1f}%), CPU {med(rc):.3f} "
          f"({(med(rc) - 1) * 100:+.1f}%)   per round: wall {' '.join(f'{x:.3f}' for x in rw)}; "
          f"CPU {' '.join(f'{x:.3f}' for x in rc)}")
    G = lambda k: med([r["pipeline"]["gaps"].get(k) for r in rounds])
    idle = sum(G(k) or 0 for k in ("to_first_job", "between_jobs", "after_last_job"))
    own = P("cpu_hub_self") - poll * P("wall")
    print(f"structural overhead (does not depend on the load): time outside any job {idle:.2f} s = "
          f"{idle / H('wall') * 100:.1f}% of the wall by hand (upload -> first job {G('to_first_job'):.2f} s, "
          f"between jobs {G('between_jobs'):.2f} s, last job -> ready seen {G('after_last_job'):.2f} s); "
          f"hub CPU net of polling {own:.2f} s = {own / H('cpu') * 100:.1f}% of the CPU by hand")
    kinds = {}
    for r in rounds:
        per = {}
        for k, e, c in r["hand"]["per"]:
            job = {"tail probe": "probe", "poster": "thumbnails", "sprite": "thumbnails"}.get(k, k)
            per[job] = per.get(job, 0) + e
        for k, e in per.items():
            kinds.setdefault(k, []).append((e, r["pipeline"]["jobs"].get(k)))
    print("  per job, wall, pipeline job (hub log start -> done) vs its commands by hand: " + ", ".join(
        f"{k} {med([p for _, p in v]):.2f}/{med([e for e, _ in v]):.2f}s" for k, v in kinds.items()))
    cmds = {}
    for r in rounds:
        for k, e, c in r["hand"]["per"]:
            cmds.setdefault(k, []).append((e, c))
    print("  by hand, per command (wall/CPU): " + ", ".join(
        f"{k} {med([e for e, _ in v]):.2f}/{med([c for _, c in v]):.2f}s" for k, v in cmds.items()))
    print(f"  first playable during these runs: {P('first_playable'):.2f} s")
    jobs = {}
    for r in rounds:
        for k, v in r["pipeline"]["jobs"].items():
            jobs.setdefault(k, []).append(v)
    print(f"\n(c) pipeline upload -> full ladder vs the operator's single-pass command (median of {n}); "
          f"goal ratio <= 1")
    print(f"{'':34} {'wall':>8} {'CPU':>8} {'load':>6} {'other':>6}")
    print(f"{'pipeline (upload -> ready)':34} {P('wall'):7.1f}s {P('cpu'):7.1f}s {P('load'):6.2f} {P('other'):6.2f}")
    print(f"{'  ladder job starts after':34} {P('ladder_start'):7.1f}s")
    print(f"{'  ladder job':34} {med(jobs.get('ladder', [])):7.1f}s")
    print(f"{'operator, one ffmpeg':34} {O('wall'):7.1f}s {O('cpu'):7.1f}s {O('load'):6.2f} {O('other'):6.2f}")
    lw = [r["pipeline"]["wall"] / r["operator"]["wall"] for r in rounds]
    lc = [r["pipeline"]["cpu"] / r["operator"]["cpu"] for r in rounds]
    hl = [next(e for k, e, _ in r["hand"]["per"] if k == "ladder") / r["operator"]["wall"] for r in rounds]
    hc = [next(c for k, _, c in r["hand"]["per"] if k == "ladder") / r["operator"]["cpu"] for r in rounds]
    print(f"ratio pipeline/operator: wall {med(lw):.3f} ({(med(lw) - 1) * 100:+.1f}%), CPU {med(lc):.3f} "
          f"({(med(lc) - 1) * 100:+.1f}%)   per round: wall {' '.join(f'{x:.3f}' for x in lw)}")
    print(f"  the pipeline's ladder command alone (by hand) / operator: wall {med(hl):.3f}, CPU {med(hc):.3f}")
    pb, ob = rounds[-1].get("pipeline_bytes", {}), rounds[-1]["operator"]["bytes"]
    print("  output bytes pipeline/operator per rendition: " + ", ".join(
        f"{k} {pb.get(k, 0) / max(ob[k], 1):.3f}" for k in ob))


if __name__ == "__main__":
    main()
