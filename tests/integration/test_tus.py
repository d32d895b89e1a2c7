"""tus 1.0.0 at /files/: the protocol, its extensions and its error cases."""
import base64
import threading
import unittest

from hub import HubTestCase, checksum_header, random_bytes


class TusProtocol(HubTestCase):
    hub_env = {"MAX_UPLOAD_SIZE_MB": "8"}

    def test_options_advertises_version_extensions_and_limits(self):
        status, h, _ = self.hub.request("OPTIONS", "/files/")
        self.assertEqual(status, 204)
        self.assertEqual(h["tus-version"], "1.0.0")
        self.assertEqual(h["tus-resumable"], "1.0.0")
        for ext in ("creation", "creation-with-upload", "termination", "checksum", "expiration"):
            self.assertIn(ext, h["tus-extension"].split(","))
        self.assertEqual(h["tus-max-size"], str(8 << 20))
        self.assertEqual(set(h["tus-checksum-algorithm"].split(",")), {"sha1", "md5", "sha256"})

    def test_create_head_patch_complete_and_watch(self):
        data = random_bytes(3 << 20, seed=2)
        status, h, _ = self.hub.tus_create(len(data), {"filename": "holiday.mp4", "title": "Holiday"})
        self.assertEqual(status, 201)
        self.assertEqual(h["tus-resumable"], "1.0.0")
        loc = h["location"]
        self.assertTrue(loc.startswith("/files/"))
        self.assertIn("upload-expires", h)
        vid = loc.rsplit("/", 1)[1]
        status, v = self.hub.json("GET", f"/api/videos/{vid}", auth=False, expect=200)
        self.assertEqual(v["status"], "uploading")
        self.assertEqual(v["upload_url"], loc)
        status, h, _ = self.hub.tus_head(loc)
        self.assertEqual(status, 200)
        self.assertEqual(h["upload-offset"], "0")
        self.assertEqual(h["upload-length"], str(len(data)))
        self.assertEqual(h["cache-control"], "no-store")
        self.assertIn("filename", h["upload-metadata"])
        # Two chunks, the second resumed from HEAD's offset.
        status, h, _ = self.hub.tus_patch(loc, 0, data[:1_000_000])
        self.assertEqual(status, 204)
        self.assertEqual(h["upload-offset"], "1000000")
        status, h, _ = self.hub.tus_head(loc)
        offset = int(h["upload-offset"])
        status, h, _ = self.hub.tus_patch(loc, offset, data[offset:])
        self.assertEqual(status, 204)
        self.assertEqual(h["upload-offset"], str(len(data)))
        status, v = self.hub.json("GET", f"/api/videos/{vid}", auth=False, expect=200)
        self.assertEqual(v["status"], "ready")
        self.assertEqual(v["size"], len(data))
        self.assertEqual(v["title"], "Holiday")
        self.assertEqual(v["original_url"], f"/media/{vid}/original")
        status, h, body = self.hub.request("GET", v["original_url"])
        self.assertEqual(status, 200)
        self.assertEqual(body, data)
        self.assertEqual(h["content-type"], "video/mp4")

    def test_creation_with_upload(self):
        data = random_bytes(100_000, seed=3)
        status, h, _ = self.hub.tus_create(len(data), {"filename": "a.webm"}, body=data[:40_000])
        self.assertEqual(status, 201)
        self.assertEqual(h["upload-offset"], "40000")
        status, h, _ = self.hub.tus_patch(h["location"], 40_000, data[40_000:])
        self.assertEqual(status, 204)

    def test_missing_or_wrong_tus_resumable_is_412(self):
        for headers in ({}, {"Tus-Resumable": "0.2.2"}):
            h = {"Upload-Length": "10"}
            h.update(headers)
            status, rh, body = self.hub.request("POST", "/files/", headers=h, auth=True)
            self.assertEqual(status, 412, body)
            self.assertEqual(rh["tus-version"], "1.0.0")

    def test_unauthenticated_writes_are_401_json(self):
        status, h, body = self.hub.request("POST", "/files/", headers={"Tus-Resumable": "1.0.0", "Upload-Length": "1"})
        self.assertEqual(status, 401)
        self.assertIn(b'"unauthorized"', body)
        self.assertTrue(h["content-type"].startswith("application/json"))

    def test_patch_with_wrong_content_type_is_415(self):
        _, h, _ = self.hub.tus_create(10)
        status, _, _ = self.hub.tus_patch(h["location"], 0, b"0123456789",
                                          extra={"Content-Type": "application/octet-stream"})
        self.assertEqual(status, 415)

    def test_offset_mismatch_is_409(self):
        _, h, _ = self.hub.tus_create(10)
        loc = h["location"]
        self.assertEqual(self.hub.tus_patch(loc, 3, b"0123456")[0], 409)
        self.assertEqual(self.hub.tus_patch(loc, 0, b"01234")[0], 204)
        self.assertEqual(self.hub.tus_patch(loc, 0, b"01234")[0], 409)
        self.assertEqual(self.hub.tus_head(loc)[1]["upload-offset"], "5")

    def test_checksums_verify_and_mismatch_discards_the_chunk(self):
        data = random_bytes(50_000, seed=4)
        _, h, _ = self.hub.tus_create(len(data))
        loc = h["location"]
        status, _, _ = self.hub.tus_patch(loc, 0, data[:10_000],
                                          extra={"Upload-Checksum": checksum_header("sha1", b"other")})
        self.assertEqual(status, 460)
        self.assertEqual(self.hub.tus_head(loc)[1]["upload-offset"], "0")
        offset = 0
        for alg, end in (("sha1", 10_000), ("md5", 20_000), ("sha256", 50_000)):
            status, h, body = self.hub.tus_patch(loc, offset, data[offset:end],
                                                 extra={"Upload-Checksum": checksum_header(alg, data[offset:end])})
            self.assertEqual(status, 204, body)
            offset = end
        status, _, _ = self.hub.tus_patch(loc, offset, b"", extra={"Upload-Checksum": "crc32 AAAAAA=="})
        self.assertIn(status, (400, 409))

    def test_unsupported_checksum_algorithm_is_400(self):
        _, h, _ = self.hub.tus_create(10)
        status, _, body = self.hub.tus_patch(h["location"], 0, b"0123456789", extra={"Upload-Checksum": "crc32 AAAAAA=="})
        self.assertEqual(status, 400)
        self.assertIn(b"sha1", body)

    def test_upload_length_over_maximum_is_413_at_creation(self):
        status, _, body = self.hub.tus_create((8 << 20) + 1)
        self.assertEqual(status, 413)
        self.assertIn(b"MAX_UPLOAD_SIZE_MB", body)

    def test_body_over_declared_length_is_413_and_nothing_is_kept(self):
        _, h, _ = self.hub.tus_create(10)
        loc = h["location"]
        status, _, _ = self.hub.tus_patch(loc, 0, b"x" * 11)
        self.assertEqual(status, 413)
        self.assertEqual(self.hub.tus_head(loc)[1]["upload-offset"], "0")

    def test_malformed_upload_metadata_and_length_are_400(self):
        for md in ("filename", "filename !!!", "a YQ==,a YQ==", "a YQ== b", ","):
            status, _, body = self.hub.request("POST", "/files/", headers={
                "Tus-Resumable": "1.0.0", "Upload-Length": "10", "Upload-Metadata": md}, auth=True)
            if md == "filename":  # a key without value is valid
                self.assertEqual(status, 201)
                continue
            self.assertEqual(status, 400, md)
            self.assertIn(b"Upload-Metadata", body)
        for length in ("-1", "ten", "1e3", "99999999999999999999999"):
            status, _, _ = self.hub.request("POST", "/files/", headers={
                "Tus-Resumable": "1.0.0", "Upload-Length": length}, auth=True)
            self.assertEqual(status, 400, length)
        status, _, _ = self.hub.request("POST", "/files/", headers={"Tus-Resumable": "1.0.0"}, auth=True)
        self.assertEqual(status, 400)

    def test_path_tricks_never_reach_a_file(self):
        for path in ("/files/..", "/files/..%2f..%2fetc", "/files/%2e%2e", "/files/a%00b", "/files/..%5c",
                     "/files/" + "a" * 300):
            status, _, _ = self.hub.request("HEAD", path, headers={"Tus-Resumable": "1.0.0"}, auth=True)
            self.assertIn(status, (400, 404), path)
        for path in ("/media/..%2f..%2fvideos/original", "/media/%2e%2e/original", "/media/x%00/original",
                     "/api/videos/..", "/api/videos/%2e%2e%2fetc"):
            status, _, _ = self.hub.request("GET", path)
            self.assertIn(status, (400, 404), path)

    def test_unknown_upload_is_404(self):
        self.assertEqual(self.hub.tus_head("/files/doesnotexist123")[0], 404)
        self.assertEqual(self.hub.tus_patch("/files/doesnotexist123", 0, b"x")[0], 404)

    def test_termination(self):
        _, h, _ = self.hub.tus_create(100)
        loc = h["location"]
        self.hub.tus_patch(loc, 0, b"x" * 10)
        status, h2, _ = self.hub.request("DELETE", loc, headers={"Tus-Resumable": "1.0.0"}, auth=True)
        self.assertEqual(status, 204)
        self.assertEqual(self.hub.tus_head(loc)[0], 404)
        self.assertEqual(self.hub.request("GET", "/api/videos/" + loc.rsplit("/", 1)[1])[0], 404)

    def test_method_override(self):
        _, h, _ = self.hub.tus_create(4)
        status, _, _ = self.hub.request("POST", h["location"], body=b"abcd", headers={
            "Tus-Resumable": "1.0.0", "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream",
            "X-HTTP-Method-Override": "PATCH"}, auth=True)
        self.assertEqual(status, 204)

    def test_racing_patches_one_wins_the_other_409(self):
        data = random_bytes(2_000_000, seed=9)
        _, h, _ = self.hub.tus_create(len(data))
        loc = h["location"]
        results = []

        def send(payload):
            # Stream slowly so that both are in flight at once.
            c = self.hub.open_patch(loc, 0, len(payload))
            try:
                for i in range(0, len(payload), 200_000):
                    c.send(payload[i:i + 200_000])
                    threading.Event().wait(0.02)
            except OSError:
                pass
            try:
                r = c.getresponse()
                results.append((r.status, payload))
            except OSError:
                results.append((None, payload))
            c.close()

        other = bytes(len(data))
        t1 = threading.Thread(target=send, args=(data,))
        t2 = threading.Thread(target=send, args=(other,))
        t1.start(); threading.Event().wait(0.05); t2.start()
        t1.join(); t2.join()
        statuses = sorted(s for s, _ in results if s is not None)
        self.assertEqual(statuses, [204, 409], results and [s for s, _ in results])
        winner = next(p for s, p in results if s == 204)
        vid = loc.rsplit("/", 1)[1]
        self.assertEqual(self.hub.request("GET", f"/media/{vid}/original")[2], winner)


if __name__ == "__main__":
    unittest.main()
