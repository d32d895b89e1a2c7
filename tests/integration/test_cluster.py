"""The peer cluster with real processes on loopback (issue 5, item 6b and parts of 3, 5, 7).

Three (or more) hubs, each with its own gossip port on 127.0.0.1, joined by P2P_SEEDS (static
discovery: no multicast here). They list each other alive; one killed with SIGKILL is suspect, then
dead, on the others; restarted with the same name it is alive again with a higher incarnation; a
node with the wrong key, another label or another protocol never appears and its packets are
counted as rejected; keys rotate through P2P_KEYRING_FILE with nobody leaving; a change on one hub
reaches the others by a gossip hint (the periodic rescan is turned off to prove it).
"""
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from hub import BINARY, Hub


def free_gossip_port():
    """A port free for both TCP and UDP on 127.0.0.1."""
    for _ in range(50):
        with socket.socket() as t:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                    u.bind(("127.0.0.1", port))
                    return port
            except OSError:
                continue
    raise RuntimeError("no free port")


def keygen():
    out = subprocess.run([BINARY, "keygen"], check=True, capture_output=True, text=True).stdout.strip()
    return out


class Cluster:
    """N hubs on one shared data directory, each with its own gossip port."""

    def __init__(self, n, key, extra=None, data=None):
        self.data = data or tempfile.mkdtemp(prefix="hub-cluster-")
        self.key = key
        self.ports = [free_gossip_port() for _ in range(n)]
        self.hubs = []
        for i in range(n):
            self.hubs.append(self.make(i, extra))

    def make(self, i, extra=None, name=None, port=None):
        env = {
            "P2P_ENABLED": "true", "P2P_BIND": "127.0.0.1", "P2P_PORT": str(port or self.ports[i]),
            "P2P_DISCOVERY": "static", "P2P_SEEDS": f"127.0.0.1:{self.ports[0]}",
            "P2P_CLUSTER_KEY": self.key, "P2P_NODE_NAME": name or f"node{i}", "P2P_PROFILE": "local",
            "P2P_HEARTBEAT_INTERVAL": "1", "RESCAN_INTERVAL_S": "3600", "MEDIA_WORKERS": "1",
        }
        env.update(extra or {})
        return Hub(self.data, f"c{i}", env=env)

    def start(self):
        for h in self.hubs:
            h.start()
        return self

    def cleanup(self):
        for h in self.hubs:
            h.cleanup()
        shutil.rmtree(self.data, ignore_errors=True)


def peers(hub):
    status, _, body = hub.request("GET", "/api/peers")
    assert status == 200, status
    return json.loads(body)


def states(hub):
    return {m["name"]: m["state"] for m in peers(hub)["members"]}


def member(hub, name):
    return next((m for m in peers(hub)["members"] if m["name"] == name), None)


class ThreeNodes(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.key = keygen()
        cls.c = Cluster(3, cls.key).start()

    @classmethod
    def tearDownClass(cls):
        cls.c.cleanup()

    def wait_all_alive(self, names, hubs=None, timeout=20):
        for h in hubs or self.c.hubs:
            h.wait_for(lambda: all(states(h).get(n) == "alive" for n in names), timeout,
                       f"{names} alive on {h.port}")

    def test_1_join_and_peers_view(self):
        names = ["node0", "node1", "node2"]
        self.wait_all_alive(names)
        p = peers(self.c.hubs[1])
        self.assertTrue(p["enabled"])
        self.assertEqual(p["node"], "node1")
        self.assertEqual(p["discovery"], ["static"])
        mine = [m for m in p["members"] if m["self"]]
        self.assertEqual([m["name"] for m in mine], ["node1"])
        for m in p["members"]:
            for k in ("id", "name", "address", "state", "last_seen", "version", "rtt_ms", "incarnation", "self",
                      "source", "node_id", "http_port"):
                self.assertIn(k, m)
            self.assertEqual(m["version"], "1.0")
            self.assertTrue(m["address"].startswith("127.0.0.1:"), m)
        n0 = next(m for m in p["members"] if m["name"] == "node0")
        self.assertEqual(n0["source"], "static")
        self.assertEqual(n0["address"], f"127.0.0.1:{self.c.ports[0]}")
        # round trips are measured once probes ran
        self.c.hubs[1].wait_for(lambda: all(m["rtt_ms"] is not None for m in peers(self.c.hubs[1])["members"]
                                            if not m["self"]), 15, "rtt measured")
        # the session advertises the cluster page; the CLI prints the same members
        _, _, body = self.c.hubs[1].request("GET", "/api/session")
        self.assertTrue(json.loads(body)["features"]["cluster"])
        out = subprocess.run([BINARY, "peers", "--url", f"http://127.0.0.1:{self.c.hubs[1].port}"],
                             check=True, capture_output=True, text=True).stdout
        self.assertIn("node1 *", out)
        for n in names:
            self.assertRegex(out, rf"{n}\b.*alive")
        js = json.loads(subprocess.run([BINARY, "peers", "--json", "--url", f"http://127.0.0.1:{self.c.hubs[1].port}"],
                                       check=True, capture_output=True, text=True).stdout)
        self.assertEqual(sorted(m["name"] for m in js["members"]), names)
        # metrics
        _, _, metrics = self.c.hubs[1].request("GET", "/metrics")
        text = metrics.decode()
        self.assertIn('hub_cluster_members{state="alive"} 3', text)
        self.assertIn("hub_cluster_packets_total", text)

    def test_2_a_video_changed_on_one_hub_shows_on_the_others_by_gossip(self):
        a, b = self.c.hubs[0], self.c.hubs[2]
        self.wait_all_alive(["node0", "node2"], [a, b])
        status, h, _ = a.tus_create(4, {"filename": "x.bin", "title": "gossiped"})
        self.assertEqual(status, 201)
        vid = h["location"].rsplit("/", 1)[1]
        # RESCAN_INTERVAL_S=3600: only the hint can make b look now.
        b.wait_for(lambda: b.request("GET", f"/api/videos/{vid}")[0] == 200, 10, "the new video on another hub")
        a.json("PATCH", f"/api/videos/{vid}", {"title": "renamed by gossip"}, expect=200)
        b.wait_for(lambda: json.loads(b.request("GET", f"/api/videos/{vid}")[2])["title"] == "renamed by gossip",
                   10, "the new title on another hub")

    def test_3_killed_node_is_suspect_then_dead_then_back(self):
        victim = self.c.hubs[2]
        self.wait_all_alive(["node0", "node1", "node2"])
        inc_before = member(self.c.hubs[0], "node2")["incarnation"]
        victim.stop(signal.SIGKILL)
        seen = {0: set(), 1: set()}

        def watch():
            for i in (0, 1):
                s = states(self.c.hubs[i]).get("node2")
                seen[i].add(s)
            return all("dead" in seen[i] for i in (0, 1))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not watch():
            time.sleep(0.05)
        for i in (0, 1):
            self.assertIn("suspect", seen[i], f"hub {i} saw {seen[i]}")
            self.assertIn("dead", seen[i], f"hub {i} saw {seen[i]}")
        # the survivors stay alive to each other
        self.assertEqual(states(self.c.hubs[0])["node1"], "alive")
        # restarted with the same name (and address): alive again, higher incarnation
        victim.start()
        self.wait_all_alive(["node0", "node1", "node2"], timeout=30)
        for i in (0, 1):
            self.assertGreater(member(self.c.hubs[i], "node2")["incarnation"], inc_before)

    def test_4_graceful_stop_is_left(self):
        extra = self.c.make(3, name="node3", port=free_gossip_port())
        extra.start()
        try:
            self.wait_all_alive(["node3"], self.c.hubs[:2])
            self.assertEqual(extra.stop(signal.SIGTERM), 0)
            for h in self.c.hubs[:2]:
                h.wait_for(lambda: states(h).get("node3") == "left", 10, "node3 left")
        finally:
            extra.cleanup()

    def test_5_outsiders_never_appear_and_are_counted(self):
        target = self.c.hubs[0]
        cases = {
            "wrongkey": ({"P2P_CLUSTER_KEY": keygen()}, "key"),
            "otherlabel": ({"P2P_LABEL": "other-cluster"}, "label"),
        }
        for name, (env, reason) in cases.items():
            with self.subTest(name):
                before = peers(target)["stats"]["rejected"].get(reason, 0)
                intruder = self.c.make(5, extra=env, name=name, port=free_gossip_port())
                intruder.start()
                try:
                    target.wait_for(lambda: peers(target)["stats"]["rejected"].get(reason, 0) > before, 15,
                                    f"{reason} rejections counted")
                    time.sleep(2)  # a few probe rounds: it must still be absent
                    for h in self.c.hubs:
                        if h.proc.poll() is None:
                            self.assertNotIn(name, states(h))
                    self.assertEqual([m["name"] for m in peers(intruder)["members"]], [name])
                finally:
                    intruder.cleanup()


class KeyRotation(unittest.TestCase):
    def test_rotate_without_anyone_leaving(self):
        old, new = keygen(), keygen()
        tmp = tempfile.mkdtemp(prefix="hub-keys-")
        c = Cluster(3, old)
        try:
            files = []
            for i, h in enumerate(c.hubs):
                f = os.path.join(tmp, f"k{i}")
                files.append(f)
                h.env["P2P_KEYRING_FILE"] = f  # created from P2P_CLUSTER_KEY at first start
            c.start()
            names = ["node0", "node1", "node2"]
            for h in c.hubs:
                h.wait_for(lambda: all(states(h).get(n) == "alive" for n in names), 20, "joined")
            self.assertTrue(all(os.path.exists(f) for f in files))
            self.assertEqual(oct(os.stat(files[0]).st_mode & 0o777), "0o600")

            def keyring(f, *args):
                subprocess.run([BINARY, "keyring", *args, "--file", f], check=True, capture_output=True)
            steps = [("install", new), ("use", new), ("remove", old)]
            for action, key in steps:
                for f in files:
                    keyring(f, action, key)
                time.sleep(2.5)  # hubs re-read the file within a second; a few probe rounds
                for h in c.hubs:
                    self.assertEqual(states(h), {n: "alive" for n in names}, f"after {action}")
            listed = subprocess.run([BINARY, "keyring", "list", "--file", files[0]], check=True,
                                    capture_output=True, text=True).stdout
            self.assertEqual(listed.split(), [new, "(primary)"])
            # a node still on the old key alone cannot join any more
            late = c.make(4, name="late", port=free_gossip_port(), extra={"P2P_CLUSTER_KEY": old})
            late.start()
            try:
                time.sleep(3)
                self.assertNotIn("late", states(c.hubs[0]))
            finally:
                late.cleanup()
        finally:
            c.cleanup()
            shutil.rmtree(tmp, ignore_errors=True)


class Refusals(unittest.TestCase):
    def test_no_key_refuses_to_start_with_a_sentence(self):
        data = tempfile.mkdtemp(prefix="hub-nokey-")
        h = Hub(data, "nokey", env={"P2P_ENABLED": "true", "P2P_PORT": str(free_gossip_port()),
                                    "P2P_BIND": "127.0.0.1", "P2P_DISCOVERY": "static"})
        try:
            h.start(wait=False)
            self.assertEqual(h.proc.wait(20), 1)
            self.assertIn("stream-hub keygen", h.stderr())
        finally:
            h.cleanup()
            shutil.rmtree(data, ignore_errors=True)

    def test_port_taken_says_so(self):
        data = tempfile.mkdtemp(prefix="hub-port-")
        port = free_gossip_port()
        blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        blocker.bind(("127.0.0.1", port))
        h = Hub(data, "port", env={"P2P_ENABLED": "true", "P2P_PORT": str(port), "P2P_BIND": "127.0.0.1",
                                   "P2P_DISCOVERY": "static", "P2P_CLUSTER_KEY": keygen()})
        try:
            h.start(wait=False)
            self.assertEqual(h.proc.wait(20), 1)
            self.assertIn(f"P2P_PORT {port}", h.stderr())
        finally:
            blocker.close()
            h.cleanup()
            shutil.rmtree(data, ignore_errors=True)

    def test_keygen_prints_a_32_byte_key(self):
        k = keygen()
        self.assertEqual(len(base64.b64decode(k, validate=True)), 32)
        self.assertNotEqual(k, keygen())

    def test_name_clash_keeps_the_first(self):
        key = keygen()
        c = Cluster(2, key)
        c.hubs[1] = c.make(1, name="node0")  # the same name from another address
        try:
            c.hubs[0].start()
            time.sleep(0.5)
            c.hubs[1].start()
            time.sleep(4)
            p = peers(c.hubs[0])
            n0 = [m for m in p["members"] if m["name"] == "node0"]
            self.assertEqual(len(n0), 1)
            self.assertEqual(n0[0]["address"], f"127.0.0.1:{c.ports[0]}")
            self.assertTrue(n0[0]["self"])
            self.assertEqual(n0[0]["state"], "alive")
            self.assertIn("node0", c.hubs[0].stderr() + c.hubs[1].stderr())
            self.assertRegex(c.hubs[0].stderr() + c.hubs[1].stderr(), "two nodes are named node0|P2P_NODE_NAME")
        finally:
            c.cleanup()


if __name__ == "__main__":
    unittest.main()
