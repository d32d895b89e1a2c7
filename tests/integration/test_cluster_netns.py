"""Hubs on separate hosts (network namespaces this test creates) find each other by mDNS alone.

Issue 5's "done means": hosts started with no configuration beyond a shared key (each in its own
UTS namespace with its own host name, which P2P_NODE_NAME defaults to) list each other as alive;
killing one shows it suspect then dead on the others; a node with the wrong key never appears.
Run twice: with the built-in mDNS responder (no Avahi daemon in the hosts) and with an Avahi daemon
in every host; a third-party client (avahi-browse, python3-zeroconf) sees each hub's service with
its TXT records. Multicast only ever inside the namespaces of the rig (tests/integration/netns.py).
"""
import json
import os
import signal
import subprocess
import time
import unittest

from hub import BINARY, TOKEN
from netns import Rig, avahi_skip_reason, skip_reason

HTTP_PORT = 8501


def keygen():
    return subprocess.run([BINARY, "keygen"], check=True, capture_output=True, text=True).stdout.strip()


class Hosts:
    def __init__(self, rig, key):
        self.rig, self.key, self.procs = rig, key, {}

    def start(self, i, key=None, extra=None):
        d = os.path.join(self.rig.dir, f"hub{i}")
        os.makedirs(d, exist_ok=True)
        env = {"DATA_DIR": f"{d}/data", "STATE_DIR": f"{d}/state", "LOGS_DIR": f"{d}/logs", "TEMP_DIR": f"{d}/tmp",
               "HTTP_BIND": "127.0.0.1", "HTTP_PORT": str(HTTP_PORT), "ADMIN_TOKEN": TOKEN,
               "P2P_ENABLED": "true", "P2P_CLUSTER_KEY": key or self.key, "MEDIA_WORKERS": "1"}
        env.update(extra or {})
        for k in ("P2P_NODE_NAME", "P2P_DISCOVERY", "P2P_SEEDS", "P2P_BIND"):
            os.environ.pop(k, None)
        log = open(os.path.join(d, "hub.log"), "ab")
        # Its own UTS namespace: a host name of its own, as on a separate machine.
        argv = ["unshare", "--uts", "sh", "-c", f'hostname hub{i} && exec "$0" serve', BINARY]
        self.procs[i] = self.rig.popen(i, argv, env=env, stdout=log, stderr=log, cwd=d)
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.procs[i].poll() is not None:
                raise AssertionError(f"hub{i} exited: {self.log(i)[-2000:]}")
            if self.peers(i) is not None:
                return
            time.sleep(0.1)
        raise AssertionError(f"hub{i} did not start: {self.log(i)[-2000:]}")

    def log(self, i):
        try:
            with open(os.path.join(self.rig.dir, f"hub{i}", "hub.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def peers(self, i):
        r = self.rig.run(i, ["curl", "-fsS", "--max-time", "3", f"http://127.0.0.1:{HTTP_PORT}/api/peers"])
        if r.returncode != 0:
            return None
        return json.loads(r.stdout)

    def states(self, i):
        p = self.peers(i)
        return {m["name"]: m["state"] for m in p["members"]} if p else {}

    def wait(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.2)
        logs = "\n".join(f"--- hub{i} ---\n{self.log(i)[-1500:]}" for i in self.procs)
        raise AssertionError(f"timed out waiting for {what}\n{logs}")


@unittest.skipIf(skip_reason(), skip_reason() or "")
class ClusterInNamespaces(unittest.TestCase):
    def scenario(self, avahi):
        key = keygen()
        with Rig(n_hosts=4) as rig:
            if avahi:
                for i in (1, 2, 3, 4):
                    rig.start_avahi(i)
            hosts = Hosts(rig, key)
            for i in (1, 2, 3):
                hosts.start(i)
            names = {"hub1", "hub2", "hub3"}
            started = time.monotonic()
            for i in (1, 2, 3):
                hosts.wait(lambda: {n for n, s in hosts.states(i).items() if s == "alive"} == names, 30,
                           f"hub{i} to list every hub alive")
            found_in = time.monotonic() - started
            p = hosts.peers(1)
            self.assertEqual(p["discovery"], ["avahi" if avahi else "mdns"])
            by_name = {m["name"]: m for m in p["members"]}
            self.assertEqual(by_name["hub2"]["address"], f"{rig.ip(2)}:6881")
            # Whoever joined first, every hub's browser finds the others too: the page says how.
            src = "avahi" if avahi else "mdns"
            for i in (1, 2, 3):
                hosts.wait(lambda: all(m["source"] in (src, "self") for m in hosts.peers(i)["members"]), 20,
                           f"hub{i} to have found the others by {src}")
            print(f"\n  {'avahi' if avahi else 'built-in mDNS'}: all three alive everywhere after {found_in:.1f} s")

            # A third-party client in host 4 sees each hub's service and TXT records.
            if avahi:
                r = rig.run(4, ["avahi-browse", "-rtp", "_stream-hub._tcp"], timeout=30)
                for i in (1, 2, 3):
                    self.assertRegex(r.stdout, rf'=;eth0;IPv4;hub{i};_stream-hub\._tcp;local;hub{i}\.local;'
                                               rf'{rig.ip(i)};6881;.*"node_name=hub{i}"', r.stdout)
                    self.assertIn('"version=1.0"', r.stdout)
            else:
                script = (
                    "import sys, time\n"
                    "from zeroconf import Zeroconf, ServiceBrowser, IPVersion\n"
                    f"zc = Zeroconf(interfaces=['{rig.ip(4)}'], ip_version=IPVersion.V4Only)\n"
                    "names = set()\n"
                    "class L:\n"
                    "    def add_service(self, zc, t, n): names.add(n)\n"
                    "    def update_service(self, zc, t, n): pass\n"
                    "    def remove_service(self, zc, t, n): pass\n"
                    "ServiceBrowser(zc, '_stream-hub._tcp.local.', L())\n"
                    "time.sleep(4)\n"
                    "for n in sorted(names):\n"
                    "    i = zc.get_service_info('_stream-hub._tcp.local.', n, 3000)\n"
                    "    print(n, i.port, sorted(i.properties.items()), i.parsed_addresses())\n"
                    "zc.close()\n")
                r = rig.run(4, ["/usr/bin/python3", "-c", script], timeout=40)
                for i in (1, 2, 3):
                    self.assertIn(f"hub{i}._stream-hub._tcp.local. 6881", r.stdout, r.stdout + r.stderr)
                    self.assertIn(f"(b'node_name', b'hub{i}')", r.stdout)
                    self.assertIn(rig.ip(i), r.stdout)
                self.assertIn("(b'version', b'1.0')", r.stdout)

            # A node with the wrong key, found by mDNS like the others, never appears.
            hosts.start(4, key=keygen())
            time.sleep(6)
            for i in (1, 2, 3):
                self.assertNotIn("hub4", hosts.states(i))
            self.assertGreater(hosts.peers(1)["stats"]["rejected"].get("key", 0), 0)
            self.assertEqual(set(hosts.states(4)), {"hub4"})

            # SIGKILL hub3: suspect, then dead, on hub1 and hub2.
            hosts.procs[3].send_signal(signal.SIGKILL)
            hosts.procs[3].wait()
            seen = {1: set(), 2: set()}

            def watch():
                for i in (1, 2):
                    seen[i].add(hosts.states(i).get("hub3"))
                return all("dead" in seen[i] for i in (1, 2))
            hosts.wait(watch, 30, "hub3 dead on hub1 and hub2")
            for i in (1, 2):
                self.assertIn("suspect", seen[i])
                self.assertEqual(hosts.states(i)["hub1" if i == 2 else "hub2"], "alive")

    def test_builtin_mdns(self):
        self.scenario(avahi=False)

    @unittest.skipIf(avahi_skip_reason(), avahi_skip_reason() or "")
    def test_with_avahi_daemons(self):
        self.scenario(avahi=True)


if __name__ == "__main__":
    unittest.main()
