"""A rig of hosts in network namespaces, for tests that multicast (mDNS, Avahi).

    from netns import Rig, skip_reason

    @unittest.skipIf(skip_reason(), skip_reason())
    class T(unittest.TestCase):
        def test_x(self):
            with Rig(n_hosts=3) as rig:
                rig.start_avahi(1)                      # optional: dbus-daemon + avahi-daemon in host 1
                p = rig.popen(1, ["hub_avahi_tool", ...], stdout=subprocess.PIPE)
                r = rig.run(3, ["avahi-browse", "-rtp", "_stream-hub._tcp"])
                rig.ip(2)                               # "10.x.y.2"

API (hosts are numbered 1..n_hosts):
  Rig(n_hosts=3)          namespaces `<prefix><pid>x<seq>h<i>` plus a bridge namespace `...br`;
                          host i has eth0 = 10.<x>.<y>.i/24 (a /24 picked per run), lo up and the
                          224.0.0.0/4 route. Both veth ends are created inside namespaces: the root
                          namespace never sees them, so nothing reaches a real interface.
  rig.ns(i), rig.ip(i), rig.subnet, rig.dir
                          namespace name, address, "10.x.y.0/24", a private scratch directory.
  rig.env(i, env=None)    os.environ + env, with DBUS_SYSTEM_BUS_ADDRESS set to host i's own bus when
                          Avahi runs there, and otherwise to a socket that does not exist — so a
                          process in the rig never reaches the root namespace's system bus (whose
                          avahi-daemon would publish on the real LAN).
  rig.run(i, argv, env=None, timeout=30, check=False, **kw) -> subprocess.CompletedProcess
                          runs argv inside host i (`ip netns exec`), text output captured.
  rig.popen(i, argv, env=None, **kw) -> subprocess.Popen
                          starts argv inside host i; the rig stops it at teardown.
  rig.stop(proc, timeout=10)
                          SIGTERM, then SIGKILL after timeout; returns the exit code.
  rig.start_avahi(i, services=(), daemon=True)
                          a dbus-daemon whose socket lives in rig.dir (outside /run: every
                          `ip netns exec` gets a fresh mount namespace) and, if daemon, an
                          avahi-daemon (host-name hub<i>, IPv4 only, eth0 only, no wide-area, private
                          tmpfs /run, static services only from `services`, never the machine's
                          /etc/avahi/services); waits until the daemon answers on its bus.
  rig.stop_avahi(i, bus=True) / rig.restart_avahi(i)
                          stop the daemon (and the bus); restart the daemon alone, like
                          `systemctl restart avahi-daemon`.
  rig.avahi_log(i)        the tail of host i's avahi-daemon log (for failure messages).
  avahi_skip_reason()     None, or which of avahi-daemon, dbus-daemon, avahi-browse, dbus-send is missing.
  skip_reason()           None, or why the rig cannot run here (not root, no `ip netns`).

Teardown (on leaving the `with`, on an exception, at interpreter exit, and on SIGTERM when the rig
was entered in the main thread): stop every process the rig started, kill every PID that
`ip netns pids` still lists in its namespaces, delete the namespaces and the scratch directory.
Entering a rig also removes namespaces left by an earlier run whose process no longer exists
(names carry the pid).
"""
import atexit
import itertools
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time

PREFIX = "shrig"
_seq = itertools.count(1)
_live = set()           # rigs not yet torn down, for atexit / SIGTERM
_live_lock = threading.Lock()


def _ip(*args, check=True):
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True, timeout=30)


def skip_reason():
    """None if the rig can run here, else a reason to skip."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2 `ip` is not installed"
    try:
        r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as e:
        return f"`ip netns` is unavailable: {e}"
    if r.returncode != 0:
        return f"`ip netns` is unavailable: {r.stderr.strip()}"
    return None


def avahi_skip_reason():
    """None if avahi-daemon, dbus-daemon and avahi-browse are installed, else a reason."""
    for tool in ("avahi-daemon", "dbus-daemon", "avahi-browse", "dbus-send"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/install-deps.sh --test)"
    return None


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_ns_pids(ns):
    r = _ip("netns", "pids", ns, check=False)
    for tok in r.stdout.split():
        try:
            os.kill(int(tok), signal.SIGKILL)
        except (ValueError, ProcessLookupError):
            pass


def _delete_ns(ns):
    # A namespace whose processes are gone is removed at once; retry briefly
    # in case a SIGKILLed process is still exiting.
    for _ in range(50):
        _kill_ns_pids(ns)
        if _ip("netns", "del", ns, check=False).returncode == 0:
            return
        if ns not in _ip("netns", "list", check=False).stdout.split():
            return
        time.sleep(0.1)


def cleanup_stale():
    """Deletes rig namespaces (killing what still runs in them) and scratch directories whose
    creating process has exited: what a SIGKILLed run left behind."""
    r = _ip("netns", "list", check=False)
    for line in r.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.fullmatch(PREFIX + r"(\d+)x\d+(?:h\d+|br)", name)
        if m and not _pid_alive(int(m.group(1))):
            _delete_ns(name)
    tmp = tempfile.gettempdir()
    for entry in os.listdir(tmp):
        m = re.fullmatch(PREFIX + r"(\d+)x\d+-\w+", entry)
        if m and not _pid_alive(int(m.group(1))):
            shutil.rmtree(os.path.join(tmp, entry), ignore_errors=True)


def _teardown_all():
    with _live_lock:
        rigs = list(_live)
    for rig in rigs:
        rig.close()


atexit.register(_teardown_all)


class Rig:
    def __init__(self, n_hosts=3):
        if not 1 <= n_hosts <= 250:
            raise ValueError("n_hosts must be 1..250")
        self.n = n_hosts
        base = f"{PREFIX}{os.getpid()}x{next(_seq)}"
        self._base = base
        self._bridge = base + "br"
        rnd = random.Random(os.getpid() * 7919 + time.monotonic_ns())
        # 10.200-249.x.0/24: away from the 10.0-10.99 ranges that LANs, docker
        # and VPNs usually take; nothing here is routed from the root namespace
        # anyway, the pick only keeps logs of concurrent runs apart.
        self._x, self._y = 200 + rnd.randrange(50), rnd.randrange(256)
        self.subnet = f"10.{self._x}.{self._y}.0/24"
        self.dir = None
        self._procs = []
        self._avahi = {}           # host -> {"dbus": Popen, "avahi": Popen, "bus": address}
        self._created = []
        self._closed = False
        self._old_sigterm = None

    # ---- names -------------------------------------------------------------
    def ns(self, i):
        self._check_host(i)
        return f"{self._base}h{i}"

    def ip(self, i):
        self._check_host(i)
        return f"10.{self._x}.{self._y}.{i}"

    def _check_host(self, i):
        if not 1 <= i <= self.n:
            raise ValueError(f"host {i} is not in 1..{self.n}")

    # ---- life cycle --------------------------------------------------------
    def __enter__(self):
        cleanup_stale()
        with _live_lock:
            _live.add(self)
        if threading.current_thread() is threading.main_thread():
            self._old_sigterm = signal.getsignal(signal.SIGTERM)
            signal.signal(signal.SIGTERM, _sigterm_to_exit)
        try:
            self.dir = tempfile.mkdtemp(prefix=self._base + "-")
            os.chmod(self.dir, 0o755)   # dbus-daemon and avahi-daemon drop root
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _build(self):
        br = self._bridge
        _ip("netns", "add", br)
        self._created.append(br)
        _ip("-n", br, "link", "set", "lo", "up")
        _ip("-n", br, "link", "add", "br0", "type", "bridge")
        _ip("-n", br, "link", "set", "br0", "up")
        for i in range(1, self.n + 1):
            ns = self.ns(i)
            _ip("netns", "add", ns)
            self._created.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", br, "link", "add", f"b{i}", "type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip("-n", br, "link", "set", f"b{i}", "master", "br0")
            _ip("-n", br, "link", "set", f"b{i}", "up")
            _ip("-n", ns, "addr", "add", f"{self.ip(i)}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            # Without it a multicast sendto() fails with ENETUNREACH.
            _ip("-n", ns, "route", "add", "224.0.0.0/4", "dev", "eth0")

    def close(self):
        if self._closed:
            return
        self._closed = True
        try:
            for p in reversed(self._procs):
                self._terminate(p, timeout=5)
            for ns in reversed(self._created):
                _delete_ns(ns)
            if self.dir:
                shutil.rmtree(self.dir, ignore_errors=True)
        finally:
            with _live_lock:
                _live.discard(self)
            if self._old_sigterm is not None and threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, self._old_sigterm)

    # ---- running commands --------------------------------------------------
    def env(self, i, env=None):
        e = dict(os.environ)
        a = self._avahi.get(i)
        e["DBUS_SYSTEM_BUS_ADDRESS"] = a["bus"] if a else f"unix:path={self.dir}/no-bus-h{i}.sock"
        e.update(env or {})
        return e

    def _argv(self, i, argv):
        return ["ip", "netns", "exec", self.ns(i), *argv]

    def run(self, i, argv, env=None, timeout=30, check=False, **kw):
        kw.setdefault("capture_output", "stdout" not in kw and "stderr" not in kw)
        kw.setdefault("text", True)
        return subprocess.run(self._argv(i, argv), env=self.env(i, env), timeout=timeout, check=check, **kw)

    def popen(self, i, argv, env=None, **kw):
        p = subprocess.Popen(self._argv(i, argv), env=self.env(i, env), **kw)
        self._procs.append(p)
        return p

    def stop(self, proc, timeout=10):
        return self._terminate(proc, timeout)

    @staticmethod
    def _terminate(p, timeout):
        if p.poll() is None:
            try:
                p.terminate()
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for f in (p.stdin, p.stdout, p.stderr):
            if f:
                try:
                    f.close()
                except OSError:
                    pass
        return p.returncode

    # ---- Avahi -------------------------------------------------------------
    def start_avahi(self, i, services=(), daemon=True, timeout=20):
        """Starts host i's D-Bus system bus and, if `daemon`, its avahi-daemon; waits until
        the daemon answers. Whatever already runs is left alone (so after
        stop_avahi(i, bus=False) this starts the daemon again on the same bus).

        `services`: static service files (*.service) the daemon loads instead of the
        machine's /etc/avahi/services (none by default)."""
        d = os.path.join(self.dir, f"h{i}")
        if i not in self._avahi:
            self._start_bus(i, d, timeout)
        sdir = os.path.join(d, "services")
        for path in services:
            shutil.copy(path, os.path.join(sdir, os.path.basename(path)))
        a = self._avahi[i]
        if daemon and (a["avahi"] is None or a["avahi"].poll() is not None):
            self._start_avahi_daemon(i, timeout)

    def _start_bus(self, i, d, timeout):
        os.makedirs(os.path.join(d, "services"), mode=0o755, exist_ok=True)
        sock = os.path.join(d, "bus.sock")
        with open("/usr/share/dbus-1/system.conf") as f:
            conf = f.read()
        conf = re.sub(r"<listen>.*?</listen>", f"<listen>unix:path={sock}</listen>", conf)
        conf = re.sub(r"<pidfile>.*?</pidfile>", "", conf)
        conf = conf.replace("<includedir>system.d</includedir>",
                            "<includedir>/usr/share/dbus-1/system.d</includedir>")
        with open(os.path.join(d, "dbus.conf"), "w") as f:
            f.write(conf)
        with open(os.path.join(d, "avahi.conf"), "w") as f:
            f.write(f"[server]\nhost-name=hub{i}\nuse-ipv4=yes\nuse-ipv6=no\nallow-interfaces=eth0\n"
                    "enable-dbus=yes\n[wide-area]\nenable-wide-area=no\n"
                    "[publish]\npublish-hinfo=no\npublish-workstation=no\n")
        if os.path.exists(sock):
            os.unlink(sock)
        with open(os.path.join(d, "dbus.log"), "ab") as log:
            dbus = self.popen(i, ["dbus-daemon", "--nofork", "--nopidfile", f"--config-file={d}/dbus.conf"],
                              stdout=subprocess.DEVNULL, stderr=log)
        self._avahi[i] = {"dbus": dbus, "avahi": None, "bus": f"unix:path={sock}", "dir": d}
        deadline = time.monotonic() + timeout
        while not os.path.exists(sock):
            if dbus.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dbus-daemon in host {i} did not start: {self._log(d, 'dbus.log')}")
            time.sleep(0.02)

    def _start_avahi_daemon(self, i, timeout):
        a = self._avahi[i]
        d = a["dir"]
        # A private /run (this exec's own mount namespace): avahi-daemon keeps
        # its pid file and socket there and must not see another host's. The
        # machine's static services are replaced by this host's own directory.
        script = ("mount -t tmpfs -o mode=755 tmpfs /run && mkdir -p /run/avahi-daemon && "
                  f"if [ -d /etc/avahi/services ]; then mount --bind {d}/services /etc/avahi/services; fi && "
                  f"exec avahi-daemon -f {d}/avahi.conf --no-rlimits --no-chroot --no-proc-title")
        with open(os.path.join(d, "avahi.log"), "ab") as log:
            a["avahi"] = self.popen(i, ["sh", "-c", script], stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + timeout
        while True:
            if a["avahi"].poll() is not None:
                raise RuntimeError(f"avahi-daemon in host {i} exited: {self._log(d, 'avahi.log')}")
            r = self.run(i, ["dbus-send", "--system", "--print-reply", "--dest=org.freedesktop.Avahi", "/",
                             "org.freedesktop.Avahi.Server.GetState"], timeout=10)
            # State 2 = AVAHI_SERVER_RUNNING: the host name is established.
            if r.returncode == 0 and "int32 2" in r.stdout:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"avahi-daemon in host {i} is not running after {timeout}s: "
                                   f"{r.stderr.strip()} {self._log(d, 'avahi.log')}")
            time.sleep(0.1)

    def stop_avahi(self, i, bus=True):
        """Stops host i's avahi-daemon (SIGTERM: it withdraws its records) and, if `bus`, its D-Bus."""
        a = self._avahi.get(i)
        if not a:
            return
        if a["avahi"]:
            self._terminate(a["avahi"], timeout=10)
            a["avahi"] = None
        if bus:
            self._terminate(a["dbus"], timeout=10)
            del self._avahi[i]

    def restart_avahi(self, i, timeout=20):
        """Restarts avahi-daemon only (its bus stays), as `systemctl restart avahi-daemon` would."""
        self.stop_avahi(i, bus=False)
        self.start_avahi(i, timeout=timeout)

    def avahi_log(self, i):
        return self._log(os.path.join(self.dir, f"h{i}"), "avahi.log")

    @staticmethod
    def _log(d, name):
        try:
            with open(os.path.join(d, name), "rb") as f:
                return f.read()[-2000:].decode("utf-8", "replace")
        except OSError:
            return ""


def _sigterm_to_exit(signum, frame):
    # ctest sends SIGTERM on timeout: unwind so `with Rig` and finally blocks run.
    raise SystemExit(128 + signum)
