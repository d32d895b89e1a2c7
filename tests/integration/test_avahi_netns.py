"""Discovery through avahi-daemon, on hosts in network namespaces (netns.py).

hub_avahi_tool (src/cluster/avahi) runs AvahiDiscovery in a host and prints what it publishes and
finds as JSON lines; avahi-browse in another host is the third-party client. Multicast happens
only between the namespaces each test creates. HUB_AVAHI_TOOL points at the tool (ctest sets it).
"""
import json
import os
import re
import subprocess
import tempfile
import threading
import time
import unittest

from netns import Rig, avahi_skip_reason, skip_reason

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.environ.get("HUB_AVAHI_TOOL", os.path.join(HERE, "../../build/src/cluster/avahi/hub_avahi_tool"))
SERVICE_FILE = os.path.join(HERE, "../../deploy/avahi/stream-hub.service")
TYPE = "_stream-hub._tcp"
WAIT = 30   # generous: a cold avahi-daemon resolves a peer in ~2 s


def require_tool(test):
    if not os.access(TOOL, os.X_OK):
        test.fail(f"hub_avahi_tool not found at {TOOL}: build it "
                  "(cmake --build BUILD --target hub_avahi_tool) or set HUB_AVAHI_TOOL")


class Tool:
    """hub_avahi_tool running in a rig host; its JSON events collected as they arrive."""

    def __init__(self, rig, host, name, port=6881):
        self.rig, self.name = rig, name
        self.stderr_path = os.path.join(rig.dir, f"tool-h{host}-{len(os.listdir(rig.dir))}.log")
        with open(self.stderr_path, "wb") as err:
            self.proc = rig.popen(host, [TOOL, "--name", name, "--port", str(port), "--log-level", "debug"],
                                  stdout=subprocess.PIPE, stderr=err, text=True)
        self.events = []
        self.cv = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.cv:
                self.events.append(json.loads(line))
                self.cv.notify_all()

    def of(self, kind):
        with self.cv:
            return [e for e in self.events if e["event"] == kind]

    def wait_for(self, pred, what, timeout=WAIT):
        with self.cv:
            if self.cv.wait_for(lambda: any(pred(e) for e in self.events), timeout):
                return
            events = list(self.events)
        raise AssertionError(f"{self.name}: no {what} within {timeout}s; events: {events}\n{self.log()}")

    def log(self):
        with open(self.stderr_path, "rb") as f:
            return f.read()[-3000:].decode("utf-8", "replace")

    def stop(self):
        rc = self.rig.stop(self.proc)
        self.reader.join(10)
        return rc


def _unescape(label):
    # avahi-browse -p writes bytes outside [A-Za-z0-9_-] of a name as \DDD (decimal).
    return re.sub(r"\\(\d{3})", lambda m: chr(int(m.group(1))), label)


def browse(rig, host):
    """{instance: {"host", "address", "port", "txt"}} as `avahi-browse -rtp` in `host` sees it."""
    r = rig.run(host, ["avahi-browse", "-rtp", TYPE], timeout=60)
    services = {}
    for line in r.stdout.splitlines():
        f = line.split(";")
        if f[0] == "=" and len(f) >= 10 and f[2] == "IPv4":
            txt = dict(kv.split("=", 1) if "=" in kv else (kv, "") for kv in re.findall(r'"([^"]*)"', f[9]))
            services[_unescape(f[3])] = {"host": f[6], "address": f[7], "port": int(f[8]), "txt": txt}
    return services


def wait_browse(test, rig, host, pred, what, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while True:
        services = browse(rig, host)
        if pred(services):
            return services
        if time.monotonic() > deadline:
            test.fail(f"avahi-browse in hub{host}: {what} not seen within {timeout}s; last: {services}")
        time.sleep(0.3)


def found(tool, node_name, address):
    return lambda e: (e["event"] == "found" and e["node_name"] == node_name and e["address"] == address)


@unittest.skipIf(skip_reason(), skip_reason())
class AvahiNetnsTest(unittest.TestCase):
    def setUp(self):
        require_tool(self)
        missing = avahi_skip_reason()
        if missing:
            self.fail(missing)

    def test_nodes_find_each_other_and_survive_daemon_restarts(self):
        with Rig(n_hosts=3) as rig:
            for i in (1, 2, 3):
                rig.start_avahi(i)
            t1 = Tool(rig, 1, "node1", 6881)
            t2 = Tool(rig, 2, "node2", 7002)

            # Each sees the other, with the TXT fields and the address to join.
            t1.wait_for(found(t1, "node2", f"{rig.ip(2)}:7002"), "candidate node2")
            t2.wait_for(found(t2, "node1", f"{rig.ip(1)}:6881"), "candidate node1")
            for t in (t1, t2):
                for e in t.of("found"):
                    self.assertEqual((e["version"], e["source"]), ("1.0", "avahi"), e)

            # A third-party browser in hub3 sees both services and their TXT records.
            s = wait_browse(self, rig, 3, lambda s: {"node1", "node2"} <= s.keys(), "node1 and node2")
            self.assertEqual(s["node1"], {"host": "hub1.local", "address": rig.ip(1), "port": 6881,
                                          "txt": {"version": "1.0", "node_name": "node1"}})
            self.assertEqual(s["node2"], {"host": "hub2.local", "address": rig.ip(2), "port": 7002,
                                          "txt": {"version": "1.0", "node_name": "node2"}})

            # Stopping the tool withdraws its service.
            self.assertEqual(t1.stop(), 0, t1.log())
            self.assertEqual(len(t1.of("stopped")), 1)
            wait_browse(self, rig, 3, lambda s: "node1" not in s and "node2" in s, "node1 withdrawn")

            # avahi-daemon restarted under a running tool: the service goes, then
            # comes back without the tool being touched (AVAHI_CLIENT_NO_FAIL).
            published = len(t2.of("published"))
            rig.stop_avahi(2, bus=False)
            wait_browse(self, rig, 3, lambda s: "node2" not in s, "node2 gone with its daemon")
            self.assertIsNone(t2.proc.poll(), "the tool must outlive its daemon")
            rig.start_avahi(2)
            t2.wait_for(lambda e: e["event"] == "published" and len(t2.of("published")) > published,
                        "re-publication after the daemon restart")
            s = wait_browse(self, rig, 3, lambda s: "node2" in s, "node2 back")
            self.assertEqual((s["node2"]["address"], s["node2"]["port"]), (rig.ip(2), 7002))

            # D-Bus restarted too: the tool retries until the bus is back.
            published = len(t2.of("published"))
            rig.stop_avahi(2)
            wait_browse(self, rig, 3, lambda s: "node2" not in s, "node2 gone with D-Bus")
            rig.start_avahi(2)
            t2.wait_for(lambda e: e["event"] == "published" and len(t2.of("published")) > published,
                        "re-publication after the D-Bus restart")
            wait_browse(self, rig, 3, lambda s: "node2" in s, "node2 back after D-Bus")

            # Nobody ever reported itself.
            self.assertFalse([e for e in t1.of("found") if e["node_name"] == "node1"], t1.events)
            self.assertFalse([e for e in t2.of("found") if e["node_name"] == "node2"], t2.events)
            self.assertEqual(t2.stop(), 0, t2.log())

    def test_name_clash_takes_an_alternative_name(self):
        with Rig(n_hosts=3) as rig:
            for i in (1, 2, 3):
                rig.start_avahi(i)
            t1 = Tool(rig, 1, "same")
            t1.wait_for(lambda e: e["event"] == "published", "publication")
            t2 = Tool(rig, 2, "same")
            t2.wait_for(lambda e: e["event"] == "published" and e["name"] == "same #2", "renamed publication")
            self.assertIn("taken on the network", t2.log())
            # The first owner keeps its name; both keep node_name=same in TXT.
            self.assertEqual({e["name"] for e in t1.of("published")}, {"same"})
            s = wait_browse(self, rig, 3, lambda s: {"same", "same #2"} <= s.keys(), "same and same #2")
            self.assertEqual((s["same"]["address"], s["same"]["txt"]["node_name"]), (rig.ip(1), "same"))
            self.assertEqual((s["same #2"]["address"], s["same #2"]["txt"]["node_name"]), (rig.ip(2), "same"))
            t1.wait_for(found(t1, "same", f"{rig.ip(2)}:6881"), "the renamed peer")

    def test_shipped_service_file(self):
        with Rig(n_hosts=4) as rig:
            # hub1: installed as deploy/avahi/README.md says (node_name substituted);
            # hub4: dropped in as shipped (node_name=%h left for the browser to resolve).
            with open(SERVICE_FILE) as f:
                shipped = f.read()
            self.assertIn("node_name=%h", shipped)
            installed = os.path.join(rig.dir, "stream-hub.service")
            with open(installed, "w") as f:
                f.write(shipped.replace("node_name=%h", "node_name=hub1"))
            rig.start_avahi(1, services=[installed])
            rig.start_avahi(4, services=[SERVICE_FILE])
            rig.start_avahi(2)
            rig.start_avahi(3)

            s = wait_browse(self, rig, 3, lambda s: {"hub1", "hub4"} <= s.keys(), "hub1 and hub4", timeout=WAIT)
            self.assertEqual(s["hub1"], {"host": "hub1.local", "address": rig.ip(1), "port": 6881,
                                         "txt": {"version": "1.0", "node_name": "hub1"}})
            self.assertEqual(s["hub4"]["txt"], {"version": "1.0", "node_name": "%h"})

            t2 = Tool(rig, 2, "node2")
            t2.wait_for(found(t2, "hub1", f"{rig.ip(1)}:6881"), "the static service of hub1")
            t2.wait_for(found(t2, "hub4", f"{rig.ip(4)}:6881"), "hub4 by its instance name")
            # A hub on hub1's own port ignores hub1's static entry (it is itself).
            t1 = Tool(rig, 1, "node1", 6881)
            t1.wait_for(found(t1, "node2", f"{rig.ip(2)}:6881"), "candidate node2")
            t1.wait_for(found(t1, "hub4", f"{rig.ip(4)}:6881"), "candidate hub4")
            self.assertFalse([e for e in t1.of("found") if e["address"].startswith(rig.ip(1) + ":")], t1.events)

    def test_start_fails_when_the_bus_has_no_avahi_daemon(self):
        with Rig(n_hosts=1) as rig:
            rig.start_avahi(1, daemon=False)
            r = rig.run(1, [TOOL, "--name", "lonely"], timeout=30)
            self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
            err = json.loads(r.stdout.splitlines()[0])
            self.assertEqual(err["code"], "daemon_unreachable")
            self.assertIn("no avahi-daemon is registered", err["message"])
            self.assertIn("P2P_DISCOVERY=mdns", err["message"])


class StartWithoutBusTest(unittest.TestCase):
    """No D-Bus at all: nothing multicasts, so this runs without a rig (and without root)."""

    def test_start_fails_clearly(self):
        require_tool(self)
        with tempfile.TemporaryDirectory() as d:
            sock = os.path.join(d, "no-such-bus.sock")
            env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=f"unix:path={sock}")
            r = subprocess.run([TOOL, "--name", "lonely"], env=env, capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        err = json.loads(r.stdout.splitlines()[0])
        self.assertEqual(err["event"], "error")
        self.assertEqual(err["code"], "daemon_unreachable")
        self.assertIn(sock, err["message"])
        self.assertIn("P2P_DISCOVERY=mdns", err["message"])
        self.assertIn(sock, r.stderr)


if __name__ == "__main__":
    unittest.main()
