#!/usr/bin/env python3
"""bench/cluster/probe.py — the timing-critical half of bench/cluster/real.sh.

Polls cluster members over persistent connections, so that a poll of 20 agents costs a few
milliseconds instead of 20 process starts (`serf members` is a Go binary: ~20 ms each):
  serf: the agent's RPC protocol (msgpack over TCP: handshake, then `members`), with the small
        msgpack codec below (no third-party module needed);
  hub:  GET /api/peers over HTTP/1.1 keep-alive ({"members":[{"name","state",...}]}).

Subcommands (each prints one JSON object on stdout; times are seconds since t0, a Unix time
given by --t0, or with --go FILE read from FILE once real.sh writes it — see arm()):
  free PORT...                      exit 1 if a TCP or UDP port on 127.0.0.1 is taken
  ready    --kind K --targets A,..  wait until every target answers a members poll
  converge --kind K --targets A,.. --names n0,.. --t0 T
                                    wait until every target lists every name alive; also
                                    when each target first answered at all ("ready")
  detect   --kind K --targets A,.. --victim NAME --t0 T
                                    wait until every target lists NAME failed (serf "failed",
                                    hub "dead"); also when each first saw it suspect (hub only:
                                    serf does not expose suspicion)
  cpu --pids P,.. --seconds S [--baseline PID]
                                    CPU of each PID (utime+stime, all threads) over S seconds
  report FILE                       medians of the JSON lines real.sh collected, as a table
Exit 2 on timeout, 3 when a hub answers /api/peers with 404 (no cluster support).
"""

import argparse
import http.client
import json
import os
import socket
import statistics
import struct
import sys
import time


# ---- msgpack (the subset serf's RPC uses) ---------------------------------------------------

class Incomplete(Exception):
    pass


def mp_pack(obj):
    if obj is None:
        return b"\xc0"
    if obj is True:
        return b"\xc3"
    if obj is False:
        return b"\xc2"
    if isinstance(obj, int):
        if 0 <= obj < 128:
            return bytes([obj])
        if 0 <= obj < 2**64:
            return b"\xcf" + struct.pack(">Q", obj)
        return b"\xd3" + struct.pack(">q", obj)
    if isinstance(obj, str):
        b = obj.encode()
        if len(b) < 32:
            return bytes([0xA0 | len(b)]) + b
        return b"\xda" + struct.pack(">H", len(b)) + b
    if isinstance(obj, (list, tuple)):
        return b"\xdc" + struct.pack(">H", len(obj)) + b"".join(mp_pack(x) for x in obj)
    if isinstance(obj, dict):
        return b"\xde" + struct.pack(">H", len(obj)) + b"".join(
            mp_pack(k) + mp_pack(v) for k, v in obj.items())
    raise TypeError(type(obj))


def mp_unpack(buf, pos):
    """Decodes one object at buf[pos:]; returns (obj, new_pos) or raises Incomplete."""
    def need(n):
        if pos + n > len(buf):
            raise Incomplete()

    need(1)
    t = buf[pos]
    pos += 1

    def take(n):
        nonlocal pos
        need(n)
        v = buf[pos:pos + n]
        pos += n
        return v

    def seq(n):
        nonlocal pos
        out = []
        for _ in range(n):
            v, pos = mp_unpack(buf, pos)
            out.append(v)
        return out

    def mapping(n):
        nonlocal pos
        out = {}
        for _ in range(n):
            k, pos = mp_unpack(buf, pos)
            v, pos = mp_unpack(buf, pos)
            if isinstance(k, bytes):
                k = k.decode(errors="replace")
            out[k] = v
        return out

    def text(b):
        try:
            return b.decode()
        except UnicodeDecodeError:
            return bytes(b)

    if t < 0x80:
        return t, pos
    if t >= 0xE0:
        return t - 0x100, pos
    if 0x80 <= t <= 0x8F:
        return mapping(t & 0x0F), pos
    if 0x90 <= t <= 0x9F:
        return seq(t & 0x0F), pos
    if 0xA0 <= t <= 0xBF:
        return text(take(t & 0x1F)), pos
    if t == 0xC0:
        return None, pos
    if t == 0xC2:
        return False, pos
    if t == 0xC3:
        return True, pos
    sizes = {0xC4: 1, 0xC5: 2, 0xC6: 4}               # bin
    if t in sizes:
        n = int.from_bytes(take(sizes[t]), "big")
        return bytes(take(n)), pos
    if t in (0xD9, 0xDA, 0xDB):                        # str
        n = int.from_bytes(take({0xD9: 1, 0xDA: 2, 0xDB: 4}[t]), "big")
        return text(take(n)), pos
    if t in (0xCA, 0xCB):
        return struct.unpack(">f" if t == 0xCA else ">d", take(4 if t == 0xCA else 8))[0], pos
    if t in (0xCC, 0xCD, 0xCE, 0xCF):
        return int.from_bytes(take({0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}[t]), "big"), pos
    if t in (0xD0, 0xD1, 0xD2, 0xD3):
        return int.from_bytes(take({0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8}[t]), "big",
                              signed=True), pos
    if t in (0xDC, 0xDD):
        return seq(int.from_bytes(take(2 if t == 0xDC else 4), "big")), pos
    if t in (0xDE, 0xDF):
        return mapping(int.from_bytes(take(2 if t == 0xDE else 4), "big")), pos
    if t in (0xD4, 0xD5, 0xD6, 0xD7, 0xD8):            # fixext: skip
        take(1 + {0xD4: 1, 0xD5: 2, 0xD6: 4, 0xD7: 8, 0xD8: 16}[t])
        return None, pos
    if t in (0xC7, 0xC8, 0xC9):                        # ext: skip
        n = int.from_bytes(take({0xC7: 1, 0xC8: 2, 0xC9: 4}[t]), "big")
        take(1 + n)
        return None, pos
    raise ValueError("msgpack type 0x%02x" % t)


# ---- pollers --------------------------------------------------------------------------------

def split_addr(a):
    host, port = a.rsplit(":", 1)
    return host, int(port)


class SerfRPC:
    """One persistent RPC connection to a serf agent."""

    def __init__(self, addr):
        self.addr = addr
        self.sock = None
        self.buf = b""
        self.seq = 0

    def _connect(self):
        self.sock = socket.create_connection(split_addr(self.addr), timeout=2)
        self.buf = b""
        self._call("handshake", {"Version": 1}, body=False)

    def _read_obj(self):
        while True:
            try:
                obj, pos = mp_unpack(self.buf, 0)
                self.buf = self.buf[pos:]
                return obj
            except Incomplete:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("serf RPC closed")
                self.buf += chunk

    def _call(self, command, args=None, body=True):
        self.seq += 1
        msg = mp_pack({"Command": command, "Seq": self.seq})
        if args is not None:
            msg += mp_pack(args)
        self.sock.sendall(msg)
        header = self._read_obj()
        if header.get("Error"):
            raise RuntimeError("serf %s: %s" % (command, header["Error"]))
        return self._read_obj() if body else None

    def members(self):
        """{name: status}; status alive, leaving, left or failed."""
        try:
            if self.sock is None:
                self._connect()
            resp = self._call("members")
        except (OSError, ConnectionError, ValueError):
            self.close()
            raise
        return {m["Name"]: m["Status"] for m in resp.get("Members", [])}

    def close(self):
        if self.sock is not None:
            self.sock.close()
        self.sock = None


class NoClusterAPI(Exception):
    pass


class HubHTTP:
    def __init__(self, addr, token):
        self.addr = addr
        self.token = token
        self.conn = None

    def members(self):
        """{name: state}; state alive, suspect, dead or left."""
        try:
            if self.conn is None:
                host, port = split_addr(self.addr)
                self.conn = http.client.HTTPConnection(host, port, timeout=2)
            self.conn.request("GET", "/api/peers",
                              headers={"Authorization": "Bearer " + self.token})
            r = self.conn.getresponse()
            body = r.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise ConnectionError("hub %s unreachable" % self.addr)
        if r.status == 404:
            raise NoClusterAPI("%s: GET /api/peers is 404" % self.addr)
        if r.status != 200:
            raise ConnectionError("hub %s: /api/peers answered %d" % (self.addr, r.status))
        doc = json.loads(body)
        return {m["name"]: m["state"] for m in doc.get("members", [])}

    def close(self):
        if self.conn is not None:
            self.conn.close()
        self.conn = None


def pollers(kind, targets, token):
    if kind == "serf":
        return [SerfRPC(t) for t in targets]
    return [HubHTTP(t, token) for t in targets]


FAILED = {"serf": "failed", "hub": "dead"}


def poll_until(ps, check, period, timeout, t0):
    """Polls every poller each period until check(i, members, now) is true for all; returns
    the time (s since t0) at which each first became true."""
    done = [None] * len(ps)
    deadline = time.monotonic() + timeout
    while True:
        start = time.monotonic()
        for i, p in enumerate(ps):
            if done[i] is not None:
                continue
            try:
                m = p.members()
            except NoClusterAPI:
                raise
            except Exception:  # not up yet, or restarting: try again next period
                continue
            now = time.time() - t0
            if check(i, m, now):
                done[i] = now
        if all(d is not None for d in done):
            return done
        if time.monotonic() > deadline:
            return None
        time.sleep(max(0.0, period - (time.monotonic() - start)))


def arm(ps, args):
    """With --go FILE: warm the connections, write FILE.armed, wait for FILE (written by
    real.sh just before it launches or kills), and take t0 from it. So the probe's own start-up
    never delays the first poll. Without --go, t0 is --t0."""
    if not args.go:
        return args.t0
    for p in ps:
        try:
            p.members()
        except Exception:
            pass
    with open(args.go + ".armed", "w") as f:
        f.write("armed\n")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with open(args.go) as f:
                text = f.read().strip()
            if text:
                return float(text)
        except FileNotFoundError:
            pass
        time.sleep(0.002)
    raise TimeoutError("nobody wrote " + args.go)


def summary(times):
    return {"all": max(times), "median": statistics.median(times), "first": min(times)}


def cmd_free(args):
    for p in args.ports:
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            s = socket.socket(socket.AF_INET, kind)
            if kind == socket.SOCK_STREAM:
                # As servers do (Go, Asio): a TIME-WAIT left by a previous round is no conflict.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                print(json.dumps({"busy": p}))
                return 1
            finally:
                s.close()
    print(json.dumps({"free": len(args.ports)}))
    return 0


def cmd_ready(args):
    ps = pollers(args.kind, args.targets.split(","), args.token)
    t0 = time.time()
    try:
        r = poll_until(ps, lambda i, m, now: True, args.period, args.timeout, t0)
    except NoClusterAPI as e:
        print(json.dumps({"error": str(e)}))
        return 3
    if r is None:
        print(json.dumps({"error": "timeout"}))
        return 2
    print(json.dumps({"ready": summary(r)}))
    return 0


def cmd_converge(args):
    names = set(args.names.split(","))
    ps = pollers(args.kind, args.targets.split(","), args.token)
    answered = [None] * len(ps)

    def check(i, m, now):
        if answered[i] is None:
            answered[i] = now
        return all(m.get(n) == "alive" for n in names)

    try:
        r = poll_until(ps, check, args.period, args.timeout, arm(ps, args))
    except NoClusterAPI as e:
        print(json.dumps({"error": str(e)}))
        return 3
    if r is None:
        missing = {}
        for i, p in enumerate(ps):
            try:
                m = p.members()
                missing[p.addr] = sorted(n for n in names if m.get(n) != "alive")
            except Exception as e:  # noqa: BLE001 — only for the message
                missing[p.addr] = str(e)
        print(json.dumps({"error": "timeout", "not_alive": missing}))
        return 2
    print(json.dumps({"converge": summary(r), "ready": summary(answered)}))
    return 0


def cmd_detect(args):
    ps = pollers(args.kind, args.targets.split(","), args.token)
    suspect = [None] * len(ps)
    failed = FAILED[args.kind]

    def check(i, m, now):
        state = m.get(args.victim)
        if state == "suspect" and suspect[i] is None:
            suspect[i] = now
        return state == failed

    try:
        r = poll_until(ps, check, args.period, args.timeout, arm(ps, args))
    except NoClusterAPI as e:
        print(json.dumps({"error": str(e)}))
        return 3
    if r is None:
        print(json.dumps({"error": "timeout"}))
        return 2
    out = {"failed": summary(r)}
    if any(s is not None for s in suspect):
        out["suspect"] = summary([s for s in suspect if s is not None])
    print(json.dumps(out))
    return 0


def ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])   # utime, stime (fields 14, 15)


def machine():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v[:8]), v[3] + v[4]              # total, idle + iowait


def cmd_cpu(args):
    hz = os.sysconf("SC_CLK_TCK")
    pids = [int(p) for p in args.pids.split(",")]
    watch = pids + ([args.baseline] if args.baseline else [])
    a = {p: ticks(p) for p in watch}
    m0 = machine()
    t0 = time.monotonic()
    time.sleep(args.seconds)
    dt = time.monotonic() - t0
    b = {p: ticks(p) for p in watch}
    m1 = machine()
    pct = {p: (b[p] - a[p]) / hz / dt * 100 for p in watch}
    per = [pct[p] for p in pids]
    busy = ((m1[0] - m0[0]) - (m1[1] - m0[1])) / max(1, m1[0] - m0[0]) * 100 * os.cpu_count()
    out = {"cpu": {"mean": statistics.mean(per), "max": max(per), "min": min(per),
                   "total": sum(per), "machine_busy": busy,
                   "others": max(0.0, busy - sum(pct.values()))}}
    if args.baseline:
        out["cpu"]["baseline"] = pct[args.baseline]
    print(json.dumps(out))
    return 0


# ---- report ---------------------------------------------------------------------------------

ROWS = [  # (label, metric, key, unit)
    ("launch -> all alive, every node (s)", "converge", "all", "s"),
    ("launch -> all alive, median node (s)", "converge", "median", "s"),
    ("launch -> every process answers (s)", "ready", "all", "s"),
    ("kill -> every survivor: failed (s)", "failed", "all", "s"),
    ("kill -> median survivor: failed (s)", "failed", "median", "s"),
    ("kill -> first survivor: failed (s)", "failed", "first", "s"),
    ("kill -> every survivor: suspect (s)", "suspect", "all", "s"),
    ("CPU per node, mean (% of a core)", "cpu", "mean", "%"),
    ("CPU per node, max (% of a core)", "cpu", "max", "%"),
    ("CPU same binary, cluster off (%)", "cpu", "baseline", "%"),
    ("others' CPU in the window (%)", "cpu", "others", "%"),
]


def cmd_report(args):
    data = {}   # (n, who, metric, key) -> [values]
    with open(args.file) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            r = json.loads(line)
            for metric, vals in r["result"].items():
                if not isinstance(vals, dict):
                    continue
                for key, v in vals.items():
                    data.setdefault((r["n"], r["who"], metric, key), []).append(v)
    sizes = sorted({k[0] for k in data})
    if not sizes:
        print("no figures were measured")
    for n in sizes:
        rounds = {who: max((len(v) for k, v in data.items() if k[0] == n and k[1] == who),
                           default=0) for who in ("serf", "hub")}
        print("\n%d nodes on loopback — medians of %d serf / %d hub round(s)"
              % (n, rounds["serf"], rounds["hub"]))
        print("| %-40s | %10s | %10s | %9s |" % ("", "serf", "stream-hub", "hub/serf"))
        print("| %s | %s | %s | %s |" % ("-" * 40, "-" * 10, "-" * 10, "-" * 9))
        for label, metric, key, unit in ROWS:
            s = data.get((n, "serf", metric, key))
            h = data.get((n, "hub", metric, key))
            if not s and not h:
                continue
            sm = statistics.median(s) if s else None
            hm = statistics.median(h) if h else None
            fmt = (lambda v: "%.2f" % v) if unit == "s" else (lambda v: "%.2f" % v)
            ratio = "%.2fx" % (hm / sm) if sm and hm is not None and sm > 0 else "—"
            print("| %-40s | %10s | %10s | %9s |" % (label, fmt(sm) if sm is not None else "—",
                                                    fmt(hm) if hm is not None else "—", ratio))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("free")
    p.add_argument("ports", nargs="+", type=int)
    for name in ("ready", "converge", "detect"):
        p = sub.add_parser(name)
        p.add_argument("--kind", choices=("serf", "hub"), required=True)
        p.add_argument("--targets", required=True)
        p.add_argument("--token", default="")
        p.add_argument("--period", type=float, default=0.05)
        p.add_argument("--timeout", type=float, default=60)
        p.add_argument("--t0", type=float, default=0)
        p.add_argument("--go", default="")
        if name == "converge":
            p.add_argument("--names", required=True)
        if name == "detect":
            p.add_argument("--victim", required=True)
    p = sub.add_parser("cpu")
    p.add_argument("--pids", required=True)
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--baseline", type=int, default=0)
    p = sub.add_parser("report")
    p.add_argument("file")
    args = ap.parse_args()
    return {"free": cmd_free, "ready": cmd_ready, "converge": cmd_converge,
            "detect": cmd_detect, "cpu": cmd_cpu, "report": cmd_report}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
