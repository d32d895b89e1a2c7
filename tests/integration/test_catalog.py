"""The catalog API, the multipart upload, access, and the index rebuilt from storage."""
import json
import os
import shutil
import subprocess
import unittest

from hub import TOKEN, Hub, HubTestCase, random_bytes, test_clip


class Catalog(HubTestCase):
    def test_multipart_upload_with_curl(self):
        out = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", "-H", f"Authorization: Bearer {TOKEN}",
                              "-F", f"file=@{test_clip()}", "-F", "title=Clip",
                              f"http://127.0.0.1:{self.hub.port}/api/videos"], capture_output=True, text=True,
                             timeout=60)
        body, code = out.stdout.rsplit("\n", 1)
        self.assertEqual(code, "201", body)
        v = json.loads(body)
        self.assertEqual(v["title"], "Clip")
        self.assertEqual(v["status"], "ready")
        self.assertEqual(v["size"], os.path.getsize(test_clip()))
        status, _, data = self.hub.request("GET", v["original_url"])
        with open(test_clip(), "rb") as f:
            self.assertEqual(data, f.read())

    def test_multipart_errors(self):
        status, _, body = self.hub.request("POST", "/api/videos", body=b"{}",
                                           headers={"Content-Type": "application/json"}, auth=True)
        self.assertEqual(status, 415)
        form = b"--B\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nno file\r\n--B--\r\n"
        status, _, body = self.hub.request("POST", "/api/videos", body=form,
                                           headers={"Content-Type": "multipart/form-data; boundary=B"}, auth=True)
        self.assertEqual(status, 400)
        self.assertIn(b"file", body)
        truncated = b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp4\"\r\n\r\npartial"
        status, _, _ = self.hub.request("POST", "/api/videos", body=truncated,
                                        headers={"Content-Type": "multipart/form-data; boundary=B"}, auth=True)
        self.assertEqual(status, 400)
        status, _, _ = self.hub.request("POST", "/api/videos", body=form,
                                        headers={"Content-Type": "multipart/form-data; boundary=B"})
        self.assertEqual(status, 401)

    def test_list_search_sort_and_page(self):
        ids = []
        for i, title in enumerate(["Alpha sunrise", "beta 100% sure", "Gamma_ray", "delta", "Epsilon sunrise"]):
            ids.append(self.hub.upload(random_bytes(1000, seed=i), title=title))
        _, page = self.hub.json("GET", "/api/videos?q=sunrise", auth=False, expect=200)
        self.assertEqual(sorted(v["title"] for v in page["items"]), ["Alpha sunrise", "Epsilon sunrise"])
        _, page = self.hub.json("GET", "/api/videos?q=100%25", auth=False, expect=200)
        self.assertEqual([v["title"] for v in page["items"]], ["beta 100% sure"])
        _, page = self.hub.json("GET", "/api/videos?q=a_r", auth=False, expect=200)
        self.assertEqual([v["title"] for v in page["items"]], ["Gamma_ray"])
        # Walk every page of each sort; each video once, in order.
        for sort in ("newest", "oldest", "title"):
            seen, cursor = [], None
            while True:
                url = f"/api/videos?limit=2&sort={sort}" + (f"&cursor={cursor}" if cursor else "")
                _, page = self.hub.json("GET", url, auth=False, expect=200)
                seen += page["items"]
                cursor = page["next_cursor"]
                if not cursor:
                    break
            self.assertEqual(len({v["id"] for v in seen}), len(seen))
            self.assertTrue(set(ids) <= {v["id"] for v in seen})
            keys = {"newest": lambda v: v["created_at"], "oldest": lambda v: v["created_at"],
                    "title": lambda v: v["title"].lower()}[sort]
            got = [keys(v) for v in seen]
            self.assertEqual(got, sorted(got, reverse=(sort == "newest")), sort)
        for bad in ("limit=0", "limit=101", "limit=x", "sort=random", "cursor=garbage!!"):
            self.assertEqual(self.hub.request("GET", "/api/videos?" + bad)[0], 400, bad)

    def test_patch_and_delete(self):
        vid = self.hub.upload(random_bytes(500), title="Old")
        _, v = self.hub.json("PATCH", f"/api/videos/{vid}", {"title": "New", "description": "Words"}, expect=200)
        self.assertEqual((v["title"], v["description"]), ("New", "Words"))
        _, v = self.hub.json("GET", f"/api/videos/{vid}", auth=False, expect=200)
        self.assertEqual(v["title"], "New")
        for bad in ({"title": ""}, {"title": "x" * 301}, {"title": 5}, {"size": 1}, [1], "str"):
            self.assertEqual(self.hub.json("PATCH", f"/api/videos/{vid}", bad)[0], 400, bad)
        status, _, _ = self.hub.request("PATCH", f"/api/videos/{vid}", body=b"{not json",
                                        headers={"Content-Type": "application/json"}, auth=True)
        self.assertEqual(status, 400)
        status, _, _ = self.hub.request("PATCH", f"/api/videos/{vid}", body=b'{"title":"' + b"x" * 70000 + b'"}',
                                        headers={"Content-Type": "application/json"}, auth=True)
        self.assertEqual(status, 413)
        self.assertEqual(self.hub.json("PATCH", f"/api/videos/{vid}", {"title": "x"}, auth=False)[0], 401)
        self.assertEqual(self.hub.request("DELETE", f"/api/videos/{vid}")[0], 401)
        self.assertEqual(self.hub.request("DELETE", f"/api/videos/{vid}", auth=True)[0], 204)
        self.assertEqual(self.hub.request("GET", f"/api/videos/{vid}")[0], 404)
        self.assertEqual(self.hub.request("GET", f"/media/{vid}/original")[0], 404)
        _, page = self.hub.json("GET", "/api/videos?limit=100", auth=False)
        self.assertNotIn(vid, [v["id"] for v in page["items"]])
        self.assertEqual(self.hub.request("DELETE", f"/api/videos/{vid}", auth=True)[0], 404)

    def test_sign_in_cookie_allows_writes(self):
        status, _ = self.hub.json("POST", "/api/session", {"token": "wrong-token-xxxxxxxx"}, auth=False)
        self.assertEqual(status, 401)
        status, h, _ = self.hub.request("POST", "/api/session", body=json.dumps({"token": TOKEN}).encode(),
                                        headers={"Content-Type": "application/json"})
        self.assertEqual(status, 204)
        cookie = h["set-cookie"].split(";")[0]
        self.assertIn("HttpOnly", h["set-cookie"])
        vid = self.hub.upload(random_bytes(100))
        status, _, _ = self.hub.request("PATCH", f"/api/videos/{vid}", body=b'{"title":"by cookie"}',
                                        headers={"Cookie": cookie, "Content-Type": "application/json"})
        self.assertEqual(status, 200)
        # A cross-site request carrying the cookie is refused.
        status, _, _ = self.hub.request("PATCH", f"/api/videos/{vid}", body=b'{"title":"csrf"}',
                                        headers={"Cookie": cookie, "Content-Type": "application/json",
                                                 "Origin": "http://evil.example"})
        self.assertEqual(status, 403)
        status, h, _ = self.hub.request("GET", f"/signin?token={TOKEN}")
        self.assertEqual(status, 303)
        self.assertIn("hub_session=", h["set-cookie"])

    def test_web_ui_is_served(self):
        for path in ("/", "/upload", "/watch/abc", "/signin"):
            status, h, body = self.hub.request("GET", path)
            self.assertEqual(status, 200, path)
            self.assertTrue(h["content-type"].startswith("text/html"))
        status, h, _ = self.hub.request("GET", "/static/app.js")
        self.assertEqual(status, 200)
        self.assertEqual(self.hub.request("GET", "/static/app.js", headers={"If-None-Match": h["etag"]})[0], 304)
        self.assertIn(self.hub.request("GET", "/static/../../etc/passwd")[0], (400, 404))
        self.assertIn(self.hub.request("GET", "/static/%2e%2e/%2e%2e/etc/passwd")[0], (400, 404))


class IndexRebuild(unittest.TestCase):
    def test_empty_state_dir_on_existing_data_shows_the_whole_library(self):
        import tempfile
        data = tempfile.mkdtemp(prefix="hub-data-")
        a = Hub(data, "a").start()
        try:
            ids = {a.upload(random_bytes(2000, seed=i), title=f"v{i}") for i in range(5)}
            a.json("PATCH", f"/api/videos/{sorted(ids)[0]}", {"title": "renamed"}, expect=200)
            a.stop()
            shutil.rmtree(os.path.join(a.home, "state"))
            a.start()
            _, page = a.json("GET", "/api/videos?limit=100", auth=False, expect=200)
            self.assertEqual({v["id"] for v in page["items"]}, ids)
            self.assertIn("renamed", [v["title"] for v in page["items"]])
            # A corrupt index is rebuilt too.
            a.stop()
            with open(os.path.join(a.home, "state", "catalog.sqlite"), "wb") as f:
                f.write(b"this is not a database" * 100)
            a.start()
            _, page = a.json("GET", "/api/videos?limit=100", auth=False, expect=200)
            self.assertEqual({v["id"] for v in page["items"]}, ids)
        finally:
            a.cleanup()
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
