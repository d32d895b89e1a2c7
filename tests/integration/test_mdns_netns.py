"""The built-in mDNS responder and browser on a real (virtual) LAN.

Three hosts in network namespaces that the test creates (netns.Rig: veth +
bridge, private 10.x.y.0/24, torn down always). hub_mdns_tool runs the
production MdnsDiscovery driver (UDP 224.0.0.251:5353) in hub1 and hub2;
python3-zeroconf in hub3 is the third-party client. Checks:
  - the two tools find each other by mDNS alone (address, node_name, version);
  - zeroconf sees both services with their TXT records;
  - stopping a tool sends goodbyes: the other tool and zeroconf drop it;
  - two tools started with the same name end up with distinct instance names.
Multicast never leaves the namespaces (both veth ends live inside them).

Run directly (root needed):
  HUB_MDNS_TOOL=/work/build-mdns/src/cluster/mdns/hub_mdns_tool \\
    python3 -m unittest -v test_mdns_netns      (in tests/integration)
Under ctest the tool is found next to HUB_BINARY's build tree.
"""
import json
import os
import queue
import signal
import subprocess
import threading
import time
import unittest

from netns import Rig, skip_reason

HERE = os.path.dirname(os.path.abspath(__file__))


def _tool_path():
    if os.environ.get("HUB_MDNS_TOOL"):
        return os.environ["HUB_MDNS_TOOL"]
    if os.environ.get("HUB_BINARY"):   # <build>/tools/stream-hub
        build = os.path.dirname(os.path.dirname(os.path.abspath(os.environ["HUB_BINARY"])))
        return os.path.join(build, "src/cluster/mdns/hub_mdns_tool")
    return os.path.join(HERE, "../../build/src/cluster/mdns/hub_mdns_tool")


TOOL = _tool_path()
SYSTEM_PYTHON = "/usr/bin/python3"   # python3-zeroconf is installed for Debian's interpreter only


def _zeroconf_missing():
    if not os.path.exists(SYSTEM_PYTHON):
        return f"{SYSTEM_PYTHON} not found"
    r = subprocess.run([SYSTEM_PYTHON, "-c", "import zeroconf"], capture_output=True, text=True)
    return None if r.returncode == 0 else "python3-zeroconf is not installed (apt-get install python3-zeroconf)"


# Browses _stream-hub._tcp from one interface and prints one JSON line per change.
ZEROCONF_BROWSER = r"""
import json, sys
from zeroconf import Zeroconf, ServiceBrowser, ServiceStateChange, IPVersion
zc = Zeroconf(interfaces=[sys.argv[1]], ip_version=IPVersion.V4Only)
def emit(**kw):
    print(json.dumps(kw), flush=True)
def on_change(zeroconf, service_type, name, state_change):
    if state_change in (ServiceStateChange.Added, ServiceStateChange.Updated):
        info = zeroconf.get_service_info(service_type, name, timeout=5000)
        if info is None:
            emit(event="unresolved", name=name)
            return
        txt = {k.decode(): (v.decode() if v is not None else None) for k, v in info.properties.items()}
        emit(event="added", name=name, addresses=info.parsed_addresses(), port=info.port,
             server=info.server, txt=txt)
    elif state_change is ServiceStateChange.Removed:
        emit(event="removed", name=name)
browser = ServiceBrowser(zc, "_stream-hub._tcp.local.", handlers=[on_change])
emit(event="browsing")
sys.stdin.read()     # until the test closes stdin or stops us
zc.close()
"""


def _read(path):
    with open(path) as f:
        return f.read()


class Lines:
    """Collects a process's JSON stdout lines on a thread; wait() finds one by predicate."""

    def __init__(self, proc, label):
        self.proc, self.label = proc, label
        self.seen = []
        self._q = queue.Queue()
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self):
        for raw in self.proc.stdout:
            try:
                self._q.put(json.loads(raw))
            except ValueError:
                self._q.put({"event": "unparsed", "line": raw})
        self._q.put(None)

    def _drain(self, timeout):
        try:
            item = self._q.get(timeout=timeout)
        except queue.Empty:
            return False
        if item is not None:
            self.seen.append(item)
        return item is not None

    def wait(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        for item in self.seen:
            if pred(item):
                return item
        while time.monotonic() < deadline:
            n = len(self.seen)
            if not self._drain(min(0.2, max(0.01, deadline - time.monotonic()))):
                if self.proc.poll() is not None and self._q.empty():
                    break
                continue
            for item in self.seen[n:]:
                if pred(item):
                    return item
        raise AssertionError(f"{self.label}: no {what} within {timeout}s; saw {self.seen}")

    def settle(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self._drain(0.1)
        return self.seen


@unittest.skipIf(skip_reason(), skip_reason())
class MdnsNetnsTest(unittest.TestCase):
    def setUp(self):
        if not os.access(TOOL, os.X_OK):
            self.fail(f"hub_mdns_tool not found at {TOOL}: build it "
                      "(cmake --build <build> --target hub_mdns_tool) or set HUB_MDNS_TOOL")

    def start_tool(self, rig, host, name, port):
        err = open(os.path.join(rig.dir, f"tool-h{host}-{name}.log"), "w")
        p = rig.popen(host, [TOOL, "--name", name, "--port", str(port), "--interface", rig.ip(host)],
                      stdout=subprocess.PIPE, stderr=err, text=True)
        err.close()
        p.errlog = err.name
        lines = Lines(p, f"tool in host {host}")
        lines.wait(lambda e: e["event"] == "started", 10, "start")
        return p, lines

    def test_tools_find_each_other_zeroconf_sees_both_and_goodbye_removes(self):
        zc_missing = _zeroconf_missing()
        with Rig(n_hosts=3) as rig:
            zc = None
            if not zc_missing:
                zp = rig.popen(3, [SYSTEM_PYTHON, "-c", ZEROCONF_BROWSER, rig.ip(3)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                zc = Lines(zp, "zeroconf in host 3")
                zc.wait(lambda e: e["event"] == "browsing", 20, "browser start")
            p1, t1 = self.start_tool(rig, 1, "hub-one", 6881)
            p2, t2 = self.start_tool(rig, 2, "hub-two", 6882)

            f1 = t1.wait(lambda e: e["event"] == "found", 20, "hub-two found by hub-one")
            f2 = t2.wait(lambda e: e["event"] == "found", 20, "hub-one found by hub-two")
            self.assertEqual(f1["address"], f"{rig.ip(2)}:6882")
            self.assertEqual(f1["node_name"], "hub-two")
            self.assertEqual(f1["version"], "1.0")
            self.assertEqual(f1["source"], "mdns")
            self.assertEqual(f2["address"], f"{rig.ip(1)}:6881")
            self.assertEqual(f2["node_name"], "hub-one")
            t1.wait(lambda e: e["event"] == "advertised" and e["instance"] == "hub-one", 10, "advertised")

            if zc:
                for host, name, port in ((1, "hub-one", 6881), (2, "hub-two", 6882)):
                    full = f"{name}._stream-hub._tcp.local."
                    a = zc.wait(lambda e: e["event"] == "added" and e["name"] == full, 20, f"{name} in zeroconf")
                    self.assertEqual(a["port"], port)
                    self.assertEqual(a["addresses"], [rig.ip(host)])
                    self.assertEqual(a["txt"].get("version"), "1.0")
                    self.assertEqual(a["txt"].get("node_name"), name)

            # Goodbye: stopping hub-one withdraws it everywhere, long before any TTL.
            stopped_at = time.monotonic()
            p1.send_signal(signal.SIGTERM)   # the tool sends its goodbyes and exits 0
            t1.wait(lambda e: e["event"] == "stopped", 10, "stopped")
            self.assertEqual(p1.wait(10), 0, _read(p1.errlog))
            r = t2.wait(lambda e: e["event"] == "removed", 10, "hub-one removed at hub-two")
            self.assertEqual(r["address"], f"{rig.ip(1)}:6881")
            if zc:
                zc.wait(lambda e: e["event"] == "removed" and e["name"] == "hub-one._stream-hub._tcp.local.",
                        10, "hub-one removed in zeroconf")
            self.assertLess(time.monotonic() - stopped_at, 15)
            # hub-two is still there for zeroconf, and never reported itself.
            if zc:
                self.assertFalse(any(e["event"] == "removed" and e["name"].startswith("hub-two")
                                     for e in zc.settle(1)))
            self.assertFalse(any(e["event"] == "found" and e["node_name"] == "hub-two" for e in t2.seen))
            rig.stop(p2)
            if zc:
                zp.stdin.close()
                rig.stop(zp)
            if zc_missing:
                self.skipTest(f"tools checked; zeroconf part skipped: {zc_missing}")

    def test_a_name_clash_between_two_hubs_is_resolved_by_renaming_one(self):
        with Rig(n_hosts=2) as rig:
            p1, t1 = self.start_tool(rig, 1, "twin", 6881)
            t1.wait(lambda e: e["event"] == "advertised", 15, "hub1 advertised")
            p2, t2 = self.start_tool(rig, 2, "twin", 6881)
            renamed = t2.wait(lambda e: e["event"] == "renamed", 15, "rename of the late twin")
            self.assertEqual(renamed["old"], "twin")
            self.assertEqual(renamed["instance"], "twin (2)")
            t2.wait(lambda e: e["event"] == "advertised" and e["instance"] == "twin (2)", 15, "advertised as twin (2)")
            f1 = t1.wait(lambda e: e["event"] == "found", 15, "twin (2) found by hub1")
            f2 = t2.wait(lambda e: e["event"] == "found", 15, "twin found by hub2")
            self.assertEqual((f1["instance"], f1["address"]), ("twin (2)", f"{rig.ip(2)}:6881"))
            self.assertEqual((f2["instance"], f2["address"]), ("twin", f"{rig.ip(1)}:6881"))
            self.assertFalse(any(e["event"] == "renamed" for e in t1.seen), "the first holder keeps its name")
            rig.stop(p1)
            rig.stop(p2)


if __name__ == "__main__":
    unittest.main()
