"""The community notepad's REST API (docs/notes-api.md) against real hub processes."""
import json
import os
import re
import shutil
import signal
import tempfile
import threading
import time
import unittest
import urllib.parse

from hub import Hub, HubTestCase, TwoHubsTestCase

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
NOTE_FIELDS = ("id", "title", "size", "length", "version", "created_at", "updated_at")


# --- helpers shared with test_notes_ws.py (functions only: no TestCase here is imported) ---

def splice(text, edits):
    """Applies [[position, delete_count, "insert"], ...] in code points, in order."""
    for p, d, s in edits:
        assert 0 <= p <= len(text) and 0 <= d <= len(text) - p, (p, d, len(text))
        text = text[:p] + s + text[p + d:]
    return text


def create_note(hub, title, text="", auth=True):
    status, note = hub.json("POST", "/api/notes", {"title": title, "text": text}, auth=auth)
    if status != 201:
        raise AssertionError(f"create {title!r}: {status} {note!r}")
    return note


def get_note(hub, note_id):
    return hub.json("GET", f"/api/notes/{note_id}", auth=False, expect=200)[1]


def edit_note(hub, note_id, base, edits, expect=200):
    return hub.json("POST", f"/api/notes/{note_id}/edits", {"base": base, "edits": edits}, expect=expect)[1]


def wait_until(predicate, timeout=10, what="condition", interval=0.1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def error_code(body):
    try:
        return json.loads(body)["error"]["code"] if isinstance(body, (bytes, str)) else body["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


def unique(prefix):
    return f"{prefix}{os.getpid()}x{time.monotonic_ns() % 10**9}"


# --- one hub ---

class NotesRest(HubTestCase):
    def assertError(self, status, body, want_status, codes, what):
        if isinstance(codes, str):
            codes = (codes,)
        self.assertEqual(status, want_status, f"{what}: status; body {body!r}")
        self.assertIn(error_code(body), codes, f"{what}: error code; body {body!r}")

    def test_create_answers_201_with_location_and_the_whole_note(self):
        text = "milk\neggs 😀"
        status, h, body = self.hub.request("POST", "/api/notes", json.dumps({"title": "Groceries", "text": text}).encode(),
                                           {"Content-Type": "application/json"}, auth=True)
        self.assertEqual(status, 201, body)
        note = json.loads(body)
        for f in NOTE_FIELDS + ("text",):
            self.assertIn(f, note, f"field {f} missing from {note}")
        self.assertTrue(h.get("location", "").endswith(f"/api/notes/{note['id']}"),
                        f"Location {h.get('location')!r} does not name the note {note['id']}")
        self.assertEqual((note["title"], note["text"]), ("Groceries", text))
        self.assertEqual(note["size"], len(text.encode()), "size counts UTF-8 bytes")
        self.assertEqual(note["length"], len(text), "length counts code points")
        self.assertRegex(note["created_at"], RFC3339)
        self.assertRegex(note["updated_at"], RFC3339)
        self.assertIsInstance(note["version"], str)
        self.assertRegex(note["version"], r"^[A-Za-z0-9_-]*$", "version is base64url")
        self.assertFalse(note.get("deleted"), "a new note is not deleted")
        got = get_note(self.hub, note["id"])
        self.assertEqual({k: got[k] for k in NOTE_FIELDS + ("text",)},
                         {k: note[k] for k in NOTE_FIELDS + ("text",)}, "GET answers what POST answered")

    def test_create_without_text_and_bad_titles(self):
        status, note = self.hub.json("POST", "/api/notes", {"title": "Empty"})
        self.assertEqual(status, 201, note)
        self.assertEqual((note["text"], note["size"], note["length"]), ("", 0, 0))
        for title in ("", "   ", "x" * 1000):
            status, body = self.hub.json("POST", "/api/notes", {"title": title})
            self.assertError(status, body, 400, "bad_title", f"title {title[:10]!r}")
        status, body = self.hub.json("POST", "/api/notes", {"text": "no title"})
        self.assertEqual(status, 400, f"create without a title: {body!r}")

    def test_list_searches_title_and_text_and_sorts_by_last_edit(self):
        tag = unique("zq")
        a = create_note(self.hub, f"Alpha {tag}", "first body")
        time.sleep(0.02)
        b = create_note(self.hub, f"Beta {tag}", "second body")
        time.sleep(0.02)
        c = create_note(self.hub, "Gamma", f"body mentions {tag} inside")
        q = urllib.parse.quote(tag)
        ids = [n["id"] for n in self.hub.json("GET", f"/api/notes?q={q}", auth=False, expect=200)[1]["notes"]]
        self.assertEqual(ids, [c["id"], b["id"], a["id"]], "search by title and text, newest edit first")
        listed = self.hub.json("GET", f"/api/notes?q={q}", auth=False)[1]["notes"][0]
        self.assertNotIn("text", listed, "the list carries no text")
        for f in NOTE_FIELDS:
            self.assertIn(f, listed)
        # Editing the oldest moves it to the front.
        time.sleep(0.02)
        edit_note(self.hub, a["id"], a["version"], [[0, 0, "edited "]])
        ids = [n["id"] for n in self.hub.json("GET", f"/api/notes?q={q}", auth=False)[1]["notes"]]
        self.assertEqual(ids, [a["id"], c["id"], b["id"]], "an edit makes a note the newest")
        # Title only, text only, case-insensitive, limit.
        ids = [n["id"] for n in self.hub.json("GET", "/api/notes?q=" + urllib.parse.quote(f"beta {tag}".upper()),
                                              auth=False)[1]["notes"]]
        self.assertEqual(ids, [b["id"]], "case-insensitive search in titles")
        ids = [n["id"] for n in self.hub.json("GET", "/api/notes?q=" + urllib.parse.quote(f"mentions {tag}"),
                                              auth=False)[1]["notes"]]
        self.assertEqual(ids, [c["id"]], "search in texts")
        notes = self.hub.json("GET", f"/api/notes?q={q}&limit=1", auth=False)[1]["notes"]
        self.assertEqual([n["id"] for n in notes], [a["id"]], "limit=1")
        everything = [n["id"] for n in self.hub.json("GET", "/api/notes", auth=False)[1]["notes"]]
        self.assertTrue({a["id"], b["id"], c["id"]} <= set(everything), "the unfiltered list has them all")

    def test_get_and_rename(self):
        note = create_note(self.hub, "Before", "body")
        status, renamed = self.hub.json("PATCH", f"/api/notes/{note['id']}", {"title": "After"})
        self.assertEqual(status, 200, renamed)
        self.assertEqual(renamed["title"], "After")
        got = get_note(self.hub, note["id"])
        self.assertEqual((got["title"], got["text"]), ("After", "body"), "rename keeps the text")
        status, body = self.hub.json("PATCH", f"/api/notes/{note['id']}", {"title": ""})
        self.assertError(status, body, 400, "bad_title", "empty title")
        self.assertEqual(get_note(self.hub, note["id"])["title"], "After")
        status, body = self.hub.json("PATCH", "/api/notes/doesnotexist", {"title": "x"})
        self.assertError(status, body, 404, "not_found", "rename of an unknown note")

    def test_delete_then_restore(self):
        tag = unique("del")
        note = create_note(self.hub, f"Doomed {tag}", "keep me")
        nid = note["id"]
        status, _, body = self.hub.request("DELETE", f"/api/notes/{nid}", auth=True)
        self.assertEqual(status, 204, body)
        status, body = self.hub.json("GET", f"/api/notes/{nid}", auth=False)
        self.assertError(status, body, 404, "not_found", "GET of a deleted note")
        live = [n["id"] for n in self.hub.json("GET", f"/api/notes?q={tag}", auth=False)[1]["notes"]]
        self.assertNotIn(nid, live, "the list leaves deleted notes out")
        listed = [n for n in self.hub.json("GET", f"/api/notes?q={tag}&deleted=1", auth=False)[1]["notes"]
                  if n["id"] == nid]
        self.assertEqual(len(listed), 1, "?deleted=1 lists the deleted note")
        self.assertTrue(listed[0]["deleted"])
        self.assertRegex(listed[0].get("deleted_at", ""), RFC3339)
        status, body = self.hub.json("POST", f"/api/notes/{nid}/edits",
                                     {"base": note["version"], "edits": [[0, 0, "x"]]})
        self.assertError(status, body, 409, "deleted", "edit of a deleted note")
        status, restored = self.hub.json("POST", f"/api/notes/{nid}/restore")
        self.assertEqual(status, 200, restored)
        self.assertFalse(restored["deleted"])
        got = get_note(self.hub, nid)
        self.assertEqual(got["text"], "keep me", "restore brings the text back")
        live = [n["id"] for n in self.hub.json("GET", f"/api/notes?q={tag}", auth=False)[1]["notes"]]
        self.assertIn(nid, live)
        edit_note(self.hub, nid, got["version"], [[0, 0, "still "]])
        self.assertEqual(get_note(self.hub, nid)["text"], "still keep me")

    def test_writes_need_the_token_reads_are_public(self):
        note = create_note(self.hub, "Guarded", "text")
        nid, v = note["id"], note["version"]
        writes = [("POST", "/api/notes", {"title": "sneaky"}),
                  ("POST", f"/api/notes/{nid}/edits", {"base": v, "edits": [[0, 0, "x"]]}),
                  ("PATCH", f"/api/notes/{nid}", {"title": "sneaky"}),
                  ("DELETE", f"/api/notes/{nid}", None),
                  ("POST", f"/api/notes/{nid}/restore", None),
                  ("POST", f"/api/notes/{nid}/revert", {"version": v})]
        for method, path, body in writes:
            status, answer = self.hub.json(method, path, body, auth=False)
            self.assertEqual(status, 401, f"{method} {path} without a token: {answer!r}")
        got = get_note(self.hub, nid)
        self.assertEqual((got["title"], got["text"], got["version"]), ("Guarded", "text", v),
                         "nothing changed without a token")
        self.assertFalse(any(n["title"] == "sneaky" for n in
                             self.hub.json("GET", "/api/notes?q=sneaky", auth=False)[1]["notes"]))
        for path in ("/api/notes", f"/api/notes/{nid}", f"/api/notes/{nid}/history",
                     f"/api/notes/{nid}/changes?since={v}", f"/api/notes/{nid}/text?version={v}",
                     f"/api/notes/{nid}/export?format=txt"):
            status, _, body = self.hub.request("GET", path)
            self.assertEqual(status, 200, f"GET {path} without a token: {body[:200]!r}")

    def test_ids_that_cannot_exist_are_404(self):
        real = create_note(self.hub, "Real", "x")  # a valid base, so only the id is wrong
        requests = (("GET", "", None), ("GET", "/history", None),
                    ("POST", "/edits", {"base": real["version"], "edits": [[0, 0, "y"]]}),
                    ("PATCH", "", {"title": "t"}), ("DELETE", "", None))
        for nid in ("a" * 1000, "x%2Fy", ".hidden", "...", "id%20with%20spaces"):
            for method, suffix, body in requests:
                status, answer = self.hub.json(method, f"/api/notes/{nid}{suffix}", body, auth=True)
                self.assertEqual((status, error_code(answer)), (404, "not_found"),
                                 f"{method} /api/notes/{nid[:20]}{suffix}: {answer!r}")
        # Dot segments, literal or percent-encoded, are refused by the HTTP layer before routing
        # (400 bad_path, for every route of the hub); either way nothing is served or written.
        for nid in ("..", "%2e%2e", "%2E%2E", "%2e", "..%2F..%2Fetc"):
            for method, suffix, body in requests:
                status, answer = self.hub.json(method, f"/api/notes/{nid}{suffix}", body, auth=True)
                self.assertIn((status, error_code(answer)), ((404, "not_found"), (400, "bad_path")),
                              f"{method} /api/notes/{nid}{suffix}: {answer!r}")
        self.assertEqual(get_note(self.hub, real["id"])["text"], "x")

    def test_sequential_edits_in_one_request_apply_in_order(self):
        note = create_note(self.hub, "Sequential", "hello world")
        edits = [[0, 5, "HELLO"], [11, 0, "!"], [5, 1, "_"], [0, 0, ">> "]]
        want = splice("hello world", edits)
        self.assertEqual(want, ">> HELLO_world!")
        out = edit_note(self.hub, note["id"], note["version"], edits)
        self.assertEqual((out["size"], out["length"]), (len(want.encode()), len(want)))
        self.assertNotEqual(out["version"], note["version"])
        got = get_note(self.hub, note["id"])
        self.assertEqual((got["text"], got["version"]), (want, out["version"]))

    def test_two_clients_editing_one_base_both_land_without_interleaving(self):
        note = create_note(self.hub, "Race", "The note: .")
        base = note["version"]
        a, b = "Alice wrote this", "Bob wrote that"
        results = {}
        barrier = threading.Barrier(2)

        def send(key, text):
            barrier.wait()
            results[key] = self.hub.json("POST", f"/api/notes/{note['id']}/edits",
                                         {"base": base, "edits": [[10, 0, text]]})

        threads = [threading.Thread(target=send, args=("a", a)), threading.Thread(target=send, args=("b", b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual([results["a"][0], results["b"][0]], [200, 200], results)
        text = get_note(self.hub, note["id"])["text"]
        self.assertIn(text, ("The note: " + a + b + ".", "The note: " + b + a + "."),
                      "both insertions, each in one piece, at the position both meant")
        # The same again, sequentially, with the second against the old base.
        v = get_note(self.hub, note["id"])["version"]
        edit_note(self.hub, note["id"], v, [[0, 4, "A"]])
        edit_note(self.hub, note["id"], v, [[len(text), 0, " (end)"]])
        self.assertEqual(get_note(self.hub, note["id"])["text"], "A" + text[4:] + " (end)")

    def test_a_retried_edit_with_the_same_uid_is_applied_once(self):
        note = create_note(self.hub, "Retry", "abc")
        path = f"/api/notes/{note['id']}/edits"
        req = {"base": note["version"], "edits": [[3, 0, "XYZ"]], "uid": "9b2f6c1e-retry-1"}
        status, first = self.hub.json("POST", path, req)
        self.assertEqual(status, 200, first)
        self.assertFalse(first.get("duplicate", False))
        # Someone else edits before the retry: the text alone could not tell.
        edit_note(self.hub, note["id"], first["version"], [[0, 0, ">"]])
        for _ in range(2):
            status, again = self.hub.json("POST", path, req)
            self.assertEqual(status, 200, again)
            self.assertIs(again.get("duplicate"), True, again)
            self.assertEqual((again["version"], again["size"], again["length"]),
                             (first["version"], first["size"], first["length"]))
        self.assertEqual(get_note(self.hub, note["id"])["text"], ">abcXYZ", "the insert is there once")
        # Another uid is another edit.
        status, other = self.hub.json("POST", path, {**req, "uid": "9b2f6c1e-retry-2"})
        self.assertEqual(status, 200, other)
        self.assertFalse(other.get("duplicate", False))
        self.assertEqual(get_note(self.hub, note["id"])["text"], ">abcXYZXYZ")
        # Without a uid nothing is remembered (as before).
        cur = get_note(self.hub, note["id"])["version"]
        edit_note(self.hub, note["id"], cur, [[0, 0, "#"]])
        edit_note(self.hub, note["id"], cur, [[0, 0, "#"]])
        self.assertEqual(get_note(self.hub, note["id"])["text"], "##>abcXYZXYZ")
        for bad in ("", "has space", "x" * 65, 7, "é"):
            status, body = self.hub.json("POST", path, {**req, "uid": bad})
            self.assertError(status, body, 400, "bad_uid", f"uid {bad!r}")
        self.assertEqual(get_note(self.hub, note["id"])["text"], "##>abcXYZXYZ")


        note = create_note(self.hub, "Emoji", "a😀b")
        self.assertEqual((note["length"], note["size"]), (3, 6))
        out = edit_note(self.hub, note["id"], note["version"], [[2, 0, "X"]])
        self.assertEqual(get_note(self.hub, note["id"])["text"], "a😀Xb", "position 2 is after the emoji")
        self.assertEqual((out["length"], out["size"]), (4, 7))
        out = edit_note(self.hub, note["id"], out["version"], [[1, 1, "é"], [3, 0, "👍🏽"]])
        self.assertEqual(get_note(self.hub, note["id"])["text"], "aéX👍🏽b",
                         "deleting one code point removes the whole emoji; 👍🏽 is two code points")
        self.assertEqual(out["length"], 6)
        # A UTF-16 count would be off: position 6 is the end in code points (it would be 7 in UTF-16).
        edit_note(self.hub, note["id"], out["version"], [[6, 0, "."]])
        self.assertEqual(get_note(self.hub, note["id"])["text"], "aéX👍🏽b.")

    def test_changes_since_turn_the_old_text_into_the_current(self):
        note = create_note(self.hub, "Changes", "one two three")
        nid, v0, t0 = note["id"], note["version"], note["text"]
        v = v0
        for edits in ([[3, 0, ","]], [[0, 3, "ONE"]], [[9, 5, ""]], [[0, 0, "😀 "], [2, 0, "start: "]]):
            v = edit_note(self.hub, nid, v, edits)["version"]
        cur = get_note(self.hub, nid)
        status, ch = self.hub.json("GET", f"/api/notes/{nid}/changes?since={urllib.parse.quote(v0)}", auth=False)
        self.assertEqual(status, 200, ch)
        self.assertEqual(ch["version"], cur["version"])
        self.assertEqual(splice(t0, ch["edits"]), cur["text"], f"changes {ch['edits']} applied to {t0!r}")
        status, ch = self.hub.json("GET", f"/api/notes/{nid}/changes?since={urllib.parse.quote(cur['version'])}",
                                   auth=False)
        self.assertEqual(status, 200, ch)
        self.assertEqual(splice(cur["text"], ch["edits"]), cur["text"], "no changes since the current version")
        status, body = self.hub.json("GET", f"/api/notes/{nid}/changes?since=!!!", auth=False)
        self.assertEqual((status, error_code(body)), (400, "bad_version"), body)

    def test_versions_the_note_never_had(self):
        note = create_note(self.hub, "Versions", "abc")
        other = create_note(self.hub, "Versions other", "a longer text with more operations")
        v = edit_note(self.hub, other["id"], other["version"], [[0, 0, "more"]])["version"]
        for path in (f"/api/notes/{note['id']}/text?version={v}", f"/api/notes/{note['id']}/changes?since={v}"):
            status, body = self.hub.json("GET", path, auth=False)
            self.assertEqual((status, error_code(body)), (409, "unknown_version"), f"{path}: {body!r}")
        for path in (f"/api/notes/{note['id']}/text?version=%21", f"/api/notes/{note['id']}/changes?since=%21"):
            status, body = self.hub.json("GET", path, auth=False)
            self.assertEqual((status, error_code(body)), (400, "bad_version"), f"{path}: {body!r}")
        # A missing version is the empty one (the state before the first edit): refused, or the empty text.
        status, body = self.hub.json("GET", f"/api/notes/{note['id']}/text", auth=False)
        self.assertTrue((status, error_code(body)) == (400, "bad_version") or (status == 200 and body["text"] == ""),
                        f"text without a version: {status} {body!r}")
        status, body = self.hub.json("POST", f"/api/notes/{note['id']}/revert", {"version": v})
        self.assertEqual((status, error_code(body)), (409, "unknown_version"), body)
        self.assertEqual(get_note(self.hub, note["id"])["text"], "abc")

    def test_history_lists_revisions_newest_first_and_old_texts_stay_readable(self):
        note = create_note(self.hub, "History", "v0")
        nid, v = note["id"], note["version"]
        texts = {v: "v0"}
        order = []
        for i, edits in enumerate(([[2, 0, " one"]], [[0, 2, "V"]], [[0, 0, "x" * 100]])):
            text = splice(list(texts.values())[-1], edits)
            v = edit_note(self.hub, nid, v, edits)["version"]
            texts[v] = text
            order.append(v)
        status, hist = self.hub.json("GET", f"/api/notes/{nid}/history", auth=False)
        self.assertEqual(status, 200, hist)
        revs = hist["revisions"]
        self.assertGreaterEqual(len(revs), 3)
        for r in revs:
            for f in ("at", "author", "node", "size", "version"):
                self.assertIn(f, r, f"revision field {f}: {r}")
            self.assertRegex(r["at"], RFC3339)
        self.assertEqual([r["version"] for r in revs[:3]], order[::-1], "newest first")
        self.assertEqual([r["size"] for r in revs[:3]], [len(texts[x].encode()) for x in order[::-1]])
        self.assertTrue(all(isinstance(r["author"], str) and r["author"] for r in revs[:3]))
        self.assertEqual(sorted(r["at"] for r in revs), [r["at"] for r in revs][::-1], "times descend")
        for ver, text in texts.items():
            status, got = self.hub.json("GET", f"/api/notes/{nid}/text?version={urllib.parse.quote(ver)}",
                                        auth=False)
            self.assertEqual(status, 200, got)
            self.assertEqual((got["text"], got["version"]), (text, ver), f"text at {ver}")

    def test_revert_restores_an_old_text_as_a_new_revision(self):
        note = create_note(self.hub, "Revert", "original")
        nid = note["id"]
        v1 = edit_note(self.hub, nid, note["version"], [[8, 0, " + first"]])["version"]
        v2 = edit_note(self.hub, nid, v1, [[0, 8, "REPLACED"]])["version"]
        v3 = edit_note(self.hub, nid, v2, [[0, 0, "more "]])["version"]
        t3 = get_note(self.hub, nid)["text"]
        before = self.hub.json("GET", f"/api/notes/{nid}/history", auth=False)[1]["revisions"]
        status, out = self.hub.json("POST", f"/api/notes/{nid}/revert", {"version": v1})
        self.assertEqual(status, 200, out)
        for f in ("version", "size", "length"):
            self.assertIn(f, out)
        got = get_note(self.hub, nid)
        self.assertEqual(got["text"], "original + first", "the text is that of the reverted-to version")
        self.assertEqual(got["version"], out["version"])
        self.assertNotIn(out["version"], (v1, v2, v3), "a revert is a new state")
        after = self.hub.json("GET", f"/api/notes/{nid}/history", auth=False)[1]["revisions"]
        self.assertEqual(len(after), len(before) + 1, "the revert adds one revision")
        self.assertEqual(after[0]["version"], out["version"])
        self.assertEqual([r["version"] for r in after[1:]], [r["version"] for r in before], "old revisions stay")
        self.assertEqual(self.hub.json("GET", f"/api/notes/{nid}/text?version={v3}", auth=False)[1]["text"], t3)
        status, body = self.hub.json("POST", f"/api/notes/{nid}/revert", {"version": "!!!"})
        self.assertEqual((status, error_code(body)), (400, "bad_version"), body)

    def test_export_as_txt_and_md_attachments(self):
        text = "# Title\n\n- item 😀\n"
        note = create_note(self.hub, "Meeting notes", text)
        for fmt, ctype in (("txt", "text/plain"), ("md", "text/markdown")):
            status, h, body = self.hub.request("GET", f"/api/notes/{note['id']}/export?format={fmt}")
            self.assertEqual(status, 200, body)
            self.assertTrue(h.get("content-type", "").startswith(ctype), f"{fmt}: {h.get('content-type')}")
            cd = h.get("content-disposition", "")
            self.assertIn("attachment", cd, f"{fmt}: Content-Disposition {cd!r}")
            self.assertIn(f"Meeting notes.{fmt}", cd, f"{fmt}: file name in {cd!r}")
            self.assertEqual(body, text.encode(), f"{fmt}: the body is the text")


# --- bad input: each refused with its code, and nothing is written ---

MAX_MB = 1
CAP = MAX_MB << 20


class NotesBadInput(unittest.TestCase):
    """One hub with NOTEPAD_MAX_SIZE_MB=1. Every refused request leaves the
    note's text and version as they were, in memory and (after a restart) on
    storage."""

    @classmethod
    def setUpClass(cls):
        cls.data_dir = tempfile.mkdtemp(prefix="hub-notes-bad-")
        cls.hub = Hub(cls.data_dir, env={"NOTEPAD_MAX_SIZE_MB": str(MAX_MB)}).start()
        cls.target = create_note(cls.hub, "Target", "abc😀def")  # 7 code points
        other = create_note(cls.hub, "Other", "x" * 50)
        v = other["version"]
        for i in range(5):
            v = edit_note(cls.hub, other["id"], v, [[0, 0, f"edit {i} "]])["version"]
        cls.other_version = v  # names more operations than Target has seen

    @classmethod
    def tearDownClass(cls):
        cls.hub.cleanup()
        shutil.rmtree(cls.data_dir, ignore_errors=True)

    def cases(self):
        """name -> (raw body, expected status, accepted error codes)."""
        v = self.target["version"]

        def body(obj):
            return json.dumps(obj).encode()

        def edits(e):
            return body({"base": v, "edits": e})

        return {
            "base_malformed": (body({"base": "!!!", "edits": [[0, 0, "x"]]}), 400, ("bad_version",)),
            "base_number": (body({"base": 12, "edits": [[0, 0, "x"]]}), 400, ("bad_version", "bad_edit")),
            "base_missing": (body({"edits": [[0, 0, "x"]]}), 400, ("bad_version", "bad_edit")),
            # docs/notes-api.md: a base naming edits this instance has not seen -> 409 unknown_version.
            "base_from_another_note": (body({"base": self.other_version, "edits": [[0, 0, "x"]]}), 409,
                                       ("unknown_version",)),
            "position_past_the_end": (edits([[8, 0, "x"]]), 400, ("bad_position",)),
            "position_negative": (edits([[-1, 0, "x"]]), 400, ("bad_position",)),
            "position_float": (edits([[1.5, 0, "x"]]), 400, ("bad_edit",)),
            "position_string": (edits([["1", 0, "x"]]), 400, ("bad_edit",)),
            "position_huge": (edits([[2**63, 0, "x"]]), 400, ("bad_edit", "bad_position")),
            "delete_past_the_end": (edits([[5, 3, ""]]), 400, ("bad_delete",)),
            "delete_negative": (edits([[2, -1, ""]]), 400, ("bad_delete",)),
            "second_edit_bad_after_a_good_one": (edits([[0, 0, "ok"], [99, 0, "x"]]), 400, ("bad_position",)),
            "edits_not_an_array": (body({"base": v, "edits": "oops"}), 400, ("bad_edit",)),
            "edits_missing": (body({"base": v}), 400, ("bad_edit",)),
            "edit_not_an_array": (edits([5]), 400, ("bad_edit",)),
            "edit_two_elements": (edits([[0, "x"]]), 400, ("bad_edit",)),
            "edit_four_elements": (edits([[0, 0, "x", 1]]), 400, ("bad_edit",)),
            "edit_text_not_a_string": (edits([[0, 0, 5]]), 400, ("bad_edit",)),
            "invalid_utf8_bytes": (b'{"base": "' + v.encode() + b'", "edits": [[0, 0, "a\xffb"]]}', 400,
                                   ("bad_utf8", "bad_json")),
            "lone_surrogate_escape": (b'{"base": "' + v.encode() + b'", "edits": [[0, 0, "a\\ud800b"]]}', 400,
                                      ("bad_utf8", "bad_json")),
            "malformed_json": (b'{"base": "' + v.encode() + b'", "edits": [[0, 0, "x"]', 400, ("bad_json",)),
            "body_not_an_object": (b"[1, 2, 3]", 400, ("bad_json", "bad_edit")),
            "empty_body": (b"", 400, ("bad_json",)),
            "single_edit_over_the_size_cap": (edits([[0, 0, "y" * (CAP + CAP // 2)]]), 413, ("too_large",)),
        }

    def refuse(self, name, note=None):
        note = note or self.target
        raw, want_status, codes = self.cases()[name]
        before = get_note(self.hub, note["id"])
        status, _, body = self.hub.request("POST", f"/api/notes/{note['id']}/edits", raw,
                                           {"Content-Type": "application/json"}, auth=True)
        after = get_note(self.hub, note["id"])
        self.assertEqual(status, want_status, f"{name}: status; body {body[:300]!r}")
        self.assertIn(error_code(body), codes, f"{name}: error code; body {body[:300]!r}")
        self.assertIsInstance(json.loads(body)["error"].get("message"), str, f"{name}: a message")
        self.assertEqual((after["text"], after["version"], after["size"]),
                         (before["text"], before["version"], before["size"]), f"{name}: the note is unchanged")

    def test_base_malformed(self): self.refuse("base_malformed")
    def test_base_a_number(self): self.refuse("base_number")
    def test_base_missing(self): self.refuse("base_missing")
    def test_base_from_another_note_is_unknown(self): self.refuse("base_from_another_note")
    def test_position_past_the_end(self): self.refuse("position_past_the_end")
    def test_position_negative(self): self.refuse("position_negative")
    def test_position_float(self): self.refuse("position_float")
    def test_position_string(self): self.refuse("position_string")
    def test_position_beyond_int64(self): self.refuse("position_huge")
    def test_delete_past_the_end(self): self.refuse("delete_past_the_end")
    def test_delete_negative(self): self.refuse("delete_negative")
    def test_request_with_one_bad_edit_applies_none(self): self.refuse("second_edit_bad_after_a_good_one")
    def test_edits_not_an_array(self): self.refuse("edits_not_an_array")
    def test_edits_missing(self): self.refuse("edits_missing")
    def test_edit_not_an_array(self): self.refuse("edit_not_an_array")
    def test_edit_with_two_elements(self): self.refuse("edit_two_elements")
    def test_edit_with_four_elements(self): self.refuse("edit_four_elements")
    def test_edit_text_not_a_string(self): self.refuse("edit_text_not_a_string")
    def test_invalid_utf8_bytes_in_the_body(self): self.refuse("invalid_utf8_bytes")
    def test_lone_surrogate_escape(self): self.refuse("lone_surrogate_escape")
    def test_malformed_json(self): self.refuse("malformed_json")
    def test_body_not_an_object(self): self.refuse("body_not_an_object")
    def test_empty_body(self): self.refuse("empty_body")
    def test_single_edit_over_the_size_cap_is_413(self): self.refuse("single_edit_over_the_size_cap")

    def test_edit_of_an_unknown_note_is_404(self):
        status, body = self.hub.json("POST", "/api/notes/nosuchnote/edits",
                                     {"base": self.target["version"], "edits": [[0, 0, "x"]]})
        self.assertEqual((status, error_code(body)), (404, "not_found"), body)

    def test_create_with_text_over_the_cap_is_413(self):
        tag = unique("big")
        status, body = self.hub.json("POST", "/api/notes", {"title": tag, "text": "z" * (CAP + 1)})
        self.assertEqual((status, error_code(body)), (413, "too_large"), str(body)[:300])
        self.assertEqual(self.hub.json("GET", f"/api/notes?q={tag}", auth=False)[1]["notes"], [],
                         "no note was created")

    def test_edit_just_over_the_cap_is_413_just_under_is_200(self):
        note = create_note(self.hub, "Near the cap", "a" * (CAP - 10))
        self.assertEqual(note["size"], CAP - 10)
        status, body = self.hub.json("POST", f"/api/notes/{note['id']}/edits",
                                     {"base": note["version"], "edits": [[0, 0, "b" * 11]]})
        self.assertEqual((status, error_code(body)), (413, "too_large"), f"CAP+1 bytes: {body!r}")
        got = get_note(self.hub, note["id"])
        self.assertEqual((got["size"], got["version"]), (CAP - 10, note["version"]), "unchanged after 413")
        out = edit_note(self.hub, note["id"], note["version"], [[0, 0, "b" * 9]])
        self.assertEqual(out["size"], CAP - 1, "CAP-1 bytes is accepted")
        # Multi-byte characters count in bytes: 😀 is 4 bytes, one more would be CAP+3.
        status, body = self.hub.json("POST", f"/api/notes/{note['id']}/edits",
                                     {"base": out["version"], "edits": [[0, 0, "😀"]]})
        self.assertEqual((status, error_code(body)), (413, "too_large"), f"4 bytes over CAP-1: {body!r}")
        out = edit_note(self.hub, note["id"], out["version"], [[0, 0, "c"]])
        self.assertEqual(out["size"], CAP, "exactly NOTEPAD_MAX_SIZE_MB is not over it")

    def test_restart_after_bad_input_reads_back_the_same_notes(self):
        # Everything refused again here so this test does not depend on the others' order.
        for name in self.cases():
            with self.subTest(case=name):
                self.refuse(name)
        notes = {n["id"]: n for n in self.hub.json("GET", "/api/notes?deleted=1", auth=False)[1]["notes"]}
        texts = {nid: get_note(self.hub, nid) for nid in notes}
        self.hub.stop(signal.SIGTERM)
        self.assertIn(self.hub.proc.returncode, (0,), "a clean exit on SIGTERM")
        self.hub.start()
        again = {n["id"]: n for n in self.hub.json("GET", "/api/notes?deleted=1", auth=False)[1]["notes"]}
        self.assertEqual(set(again), set(notes), "the same notes after a restart")
        for nid, before in texts.items():
            after = get_note(self.hub, nid)
            self.assertEqual((after["title"], after["text"], after["version"], after["size"], after["length"]),
                             (before["title"], before["text"], before["version"], before["size"],
                              before["length"]), f"note {before['title']} after the restart")
        # And it is still editable at the version read back.
        t = get_note(self.hub, self.target["id"])
        edit_note(self.hub, self.target["id"], t["version"], [[0, 0, ">"]])
        self.assertEqual(get_note(self.hub, self.target["id"])["text"], ">" + t["text"])
        self.__class__.target = get_note(self.hub, self.target["id"])


class NotepadDisabled(HubTestCase):
    hub_env = {"COMMUNITY_NOTEPAD_ENABLED": "false"}

    def test_every_route_answers_404_notepad_disabled(self):
        for method, path, body in (("GET", "/api/notes", None), ("GET", "/api/notes/x", None),
                                   ("POST", "/api/notes", {"title": "t"}),
                                   ("POST", "/api/notes/x/edits", {"base": "AA", "edits": []}),
                                   ("GET", "/api/notes/x/history", None), ("GET", "/api/notes/x/ws", None),
                                   ("DELETE", "/api/notes/x", None)):
            status, answer = self.hub.json(method, path, body, auth=True)
            self.assertEqual((status, error_code(answer)), (404, "notepad_disabled"), f"{method} {path}: {answer!r}")
        self.assertEqual(self.hub.request("GET", "/healthz")[0], 200, "the rest of the hub works")


# --- two processes on one data directory ---

def log_sizes(data_dir, note_id):
    d = os.path.join(data_dir, "notes", note_id, "logs")
    return {f: os.path.getsize(os.path.join(d, f)) for f in os.listdir(d)} if os.path.isdir(d) else {}


class NotesTwoProcesses(TwoHubsTestCase):
    def shared_note(self, title, text):
        """A note created on a and seen (same version) on b."""
        note = create_note(self.a, title, text)
        wait_until(lambda: self.b.json("GET", f"/api/notes/{note['id']}", auth=False)[1].get("version")
                   == note["version"], what=f"b sees note {title}")
        return note

    def converged(self, nid, *parts):
        def same():
            x, y = get_note(self.a, nid), get_note(self.b, nid)
            ok = x["text"] == y["text"] and x["version"] == y["version"] and all(p in x["text"] for p in parts)
            return x if ok else None
        return wait_until(same, what=f"a and b converge on note {nid} containing {parts}")

    def test_note_created_on_a_shows_on_b(self):
        tag = unique("shared")
        note = create_note(self.a, f"Shared {tag}", "hello from a")
        got = wait_until(lambda: (lambda r: r[1] if r[0] == 200 else None)(
            self.b.json("GET", f"/api/notes/{note['id']}", auth=False)), what="b serves the note")
        self.assertEqual((got["title"], got["text"], got["version"]), (note["title"], note["text"], note["version"]))
        wait_until(lambda: [n["id"] for n in self.b.json("GET", f"/api/notes?q={tag}", auth=False)[1]["notes"]]
                   == [note["id"]], what="b lists the note")

    def test_edits_on_both_hubs_against_one_base_converge(self):
        note = self.shared_note("Both", "Shared: .")
        results = {}
        barrier = threading.Barrier(2)

        def send(hub, text):
            barrier.wait()
            results[text] = hub.json("POST", f"/api/notes/{note['id']}/edits",
                                     {"base": note["version"], "edits": [[8, 0, text]]})[0]

        ts = [threading.Thread(target=send, args=(self.a, "[from A]")),
              threading.Thread(target=send, args=(self.b, "[from B]"))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual(results, {"[from A]": 200, "[from B]": 200})
        final = self.converged(note["id"], "[from A]", "[from B]")
        self.assertIn(final["text"], ("Shared: [from A][from B].", "Shared: [from B][from A]."))

    def test_an_edit_retried_on_the_other_hub_after_it_polled_is_applied_once(self):
        note = self.shared_note("Retry across", "abc")
        req = {"base": note["version"], "edits": [[3, 0, "!"]], "uid": "retry-across-1"}
        status, first = self.a.json("POST", f"/api/notes/{note['id']}/edits", req)
        self.assertEqual(status, 200, first)
        self.converged(note["id"], "abc!")
        status, again = self.b.json("POST", f"/api/notes/{note['id']}/edits", req)
        self.assertEqual(status, 200, again)
        self.assertIs(again.get("duplicate"), True, again)
        self.assertEqual(again["version"], first["version"])
        self.assertEqual(get_note(self.b, note["id"])["text"], "abc!")


        note = self.shared_note("Travels", "t")
        nid = note["id"]
        self.b.json("PATCH", f"/api/notes/{nid}", {"title": "Renamed on B"}, expect=200)
        wait_until(lambda: get_note(self.a, nid)["title"] == "Renamed on B", what="a sees b's rename")
        self.assertEqual(self.a.request("DELETE", f"/api/notes/{nid}", auth=True)[0], 204)
        wait_until(lambda: self.b.request("GET", f"/api/notes/{nid}")[0] == 404, what="b sees a's delete")
        self.b.json("POST", f"/api/notes/{nid}/restore", expect=200)
        wait_until(lambda: self.a.request("GET", f"/api/notes/{nid}")[0] == 200, what="a sees b's restore")
        self.assertEqual(get_note(self.a, nid)["title"], "Renamed on B")

    def test_many_writers_on_both_hubs_converge_with_every_insert_once(self):
        note = self.shared_note("Crowd", "|")
        errors = []

        def writer(hub, w):
            try:
                for i in range(8):
                    cur = get_note(hub, note["id"])
                    # Next to the bar (before or after it), so never inside another writer's token.
                    at = cur["text"].index("|") + i % 2
                    edit_note(hub, note["id"], cur["version"], [[at, 0, f"<{w}.{i}>"]])
            except AssertionError as e:
                errors.append(e)

        ts = [threading.Thread(target=writer, args=(self.a if w % 2 else self.b, w)) for w in range(6)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual(errors, [])
        tokens = [f"<{w}.{i}>" for w in range(6) for i in range(8)]
        final = self.converged(note["id"], *tokens)["text"]
        for tok in tokens:
            self.assertEqual(final.count(tok), 1, f"{tok} exactly once in {final!r}")
        self.assertEqual(len(final), 1 + sum(len(t) for t in tokens), "nothing else in the text")
        # Both nodes appear in the history, on both hubs.
        for hub in (self.a, self.b):
            revs = hub.json("GET", f"/api/notes/{note['id']}/history", auth=False)[1]["revisions"]
            self.assertGreaterEqual(len(revs), 48)
            self.assertEqual(len({r["node"] for r in revs}), 2, "revisions by both nodes")

    def test_base_from_the_other_hub_is_accepted_once_seen(self):
        note = self.shared_note("Relay", "abc")
        v = edit_note(self.a, note["id"], note["version"], [[3, 0, "d"]])["version"]

        def try_on_b():
            status, body = self.b.json("POST", f"/api/notes/{note['id']}/edits",
                                       {"base": v, "edits": [[4, 0, "e"]]})
            if status == 409:
                self.assertEqual(error_code(body), "unknown_version", body)
                return None
            self.assertEqual(status, 200, body)
            return body
        wait_until(try_on_b, what="b accepts a base made on a")
        self.assertEqual(self.converged(note["id"])["text"], "abcde")

    def test_acknowledged_edit_survives_sigkill(self):
        note = self.shared_note("Durable", "before")
        out = edit_note(self.a, note["id"], note["version"], [[6, 0, " and after"]])
        self.a.stop(signal.SIGKILL)
        self.a.start()
        got = get_note(self.a, note["id"])
        self.assertEqual((got["text"], got["version"]), ("before and after", out["version"]),
                         "an acknowledged edit is on storage")
        self.converged(note["id"], "and after")

    def test_sigkill_during_a_stream_of_edits_keeps_every_acknowledged_one(self):
        note = self.shared_note("Stream", "")
        acked = []
        stop = threading.Event()

        def writer():
            v, n = note["version"], 0
            while not stop.is_set():
                tok = f"[{n}]"
                try:
                    status, out = self.a.json("POST", f"/api/notes/{note['id']}/edits",
                                              {"base": v, "edits": [[len("".join(acked)), 0, tok]]})
                except OSError:
                    return
                if status != 200:
                    return
                acked.append(tok)
                v, n = out["version"], n + 1

        t = threading.Thread(target=writer)
        t.start()
        wait_until(lambda: len(acked) >= 20, what="20 acknowledged edits")
        self.a.stop(signal.SIGKILL)
        stop.set()
        t.join()
        self.a.start()
        text = get_note(self.a, note["id"])["text"]
        want = "".join(acked)
        self.assertTrue(text.startswith(want), f"every acknowledged edit ({len(acked)}) is kept: {text!r}")
        self.assertLessEqual(len(text) - len(want), len(f"[{len(acked)}]"), "at most the one unanswered edit more")
        self.converged(note["id"], want)

    def tear_own_log(self, tail_of):
        """Creates a note on a, edits it on a, stops a, appends tail_of(record)
        to a's log (record = the bytes a's last edit appended), restarts a."""
        note = self.shared_note("Torn", "intact")
        before = log_sizes(self.data, note["id"])
        out = edit_note(self.a, note["id"], note["version"], [[6, 0, " text"]])
        after = log_sizes(self.data, note["id"])
        grown = [f for f in after if after[f] > before.get(f, 0)]
        self.assertEqual(len(grown), 1, f"one log grew with a's edit: {before} -> {after}")
        path = os.path.join(self.data, "notes", note["id"], "logs", grown[0])
        self.converged(note["id"], "intact text")
        self.assertEqual(self.a.stop(signal.SIGTERM), 0)
        with open(path, "rb") as f:
            f.seek(before.get(grown[0], 0))
            record = f.read()
        with open(path, "ab") as f:
            f.write(tail_of(record))
        self.a.start()
        got = get_note(self.a, note["id"])
        self.assertEqual((got["text"], got["version"]), ("intact text", out["version"]), "the note is intact")
        out = edit_note(self.a, note["id"], got["version"], [[0, 0, "still "]])
        self.assertEqual(get_note(self.a, note["id"])["text"], "still intact text")
        self.converged(note["id"], "still intact text")
        self.a.stop(signal.SIGTERM)
        self.a.start()
        self.assertEqual(get_note(self.a, note["id"])["text"], "still intact text", "and after another restart")

    def test_half_written_record_in_own_log_is_cut_on_restart(self):
        self.tear_own_log(lambda record: record[:max(1, len(record) // 2)])

    def test_random_garbage_at_the_end_of_own_log_is_cut_on_restart(self):
        self.tear_own_log(lambda record: bytes((i * 37 + 11) % 256 for i in range(23)))


if __name__ == "__main__":
    unittest.main()
