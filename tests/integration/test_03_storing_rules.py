"""What is stored and what passes (RFC 9111 §3 as the spec of this step narrows it), and Cache-Status details.

Each case is requested twice: a stored response is a hit the second time (one origin request), a response
that is not stored is a miss with the same `detail` both times (two origin requests, the second body n=2).
"""

import unittest

from harness import EdgeTestCase, get, url

MAX_OBJECT = 1 << 20

# (name, path, query params, request headers)
STORED = [
    ("max-age", "/r/s1", dict(cc="max-age=60"), {}),
    ("public max-age", "/r/s2", dict(cc="public, max-age=60"), {}),
    ("s-maxage", "/r/s3", dict(cc="s-maxage=60"), {}),
    ("expires", "/r/s4", dict(expires=60), {}),
    ("203", "/r/s5", dict(cc="max-age=60", status=203), {}),
    ("204", "/r/s6", dict(cc="max-age=60", status=204), {}),
    ("300", "/r/s7", dict(cc="max-age=60", status=300), {}),
    ("301", "/r/s8", dict(cc="max-age=60", status=301), {}),
    ("308", "/r/s9", dict(cc="max-age=60", status=308), {}),
    ("404", "/r/s10", dict(cc="max-age=60", status=404), {}),
    ("410", "/r/s11", dict(cc="max-age=60", status=410), {}),
    ("500 with max-age", "/r/s12", dict(cc="max-age=60", status=500), {}),
    ("vary origin (a variant)", "/r/s15", dict(cc="max-age=60", vary="Origin"), {"Origin": "https://a.example"}),
    ("302 with max-age", "/r/s13", dict(cc="max-age=60", status=302), {}),
    ("403 with s-maxage", "/r/s14", dict(cc="s-maxage=60", status=403), {}),
    ("vary accept-encoding", "/r/s12", dict(cc="max-age=60", vary="Accept-Encoding"), {}),
    ("auth + public", "/r/s13", dict(cc="public, max-age=60"), {"Authorization": "Bearer x"}),
    ("auth + s-maxage", "/r/s14", dict(cc="s-maxage=60"), {"Authorization": "Bearer x"}),
    ("auth + must-revalidate", "/r/s15", dict(cc="max-age=60, must-revalidate"), {"Authorization": "Bearer x"}),
    ("exactly max_object_size", "/r/s16", dict(cc="max-age=60", len=MAX_OBJECT), {}),
    ("chunked", "/r/s17", dict(cc="max-age=60", chunked=1, len=100000), {}),
    ("content-encoding identity", "/r/s18", dict(cc="max-age=60", hdr="Content-Encoding: identity"), {}),
]

# (name, path, query params, request headers, detail)
NOT_STORED = [
    ("no-store", "/r/n1", dict(cc="no-store"), {}, "no-store"),
    ("no-store with max-age", "/r/n2", dict(cc="max-age=60, no-store"), {}, "no-store"),
    ("private", "/r/n3", dict(cc="private, max-age=60"), {}, "private"),
    ("set-cookie", "/r/n4", dict(cc="max-age=60", setcookie=1), {}, "set-cookie"),
    ("no lifetime", "/r/n5", dict(), {}, "no-lifetime"),
    ("no lifetime, public only", "/r/n6", dict(cc="public"), {}, "no-lifetime"),
    # RFC 9111 §3: any final status with explicit freshness may be stored; without it only the heuristically
    # cacheable ones (and then only through heuristic freshness); 206 and 304 never
    ("status 500 without freshness", "/r/n7", dict(status=500), {}, "status"),
    ("status 302 without freshness", "/r/n8", dict(status=302, hdr="Last-Modified:Tue, 01 Jan 2019 00:00:00 GMT"),
     {}, "status"),
    ("status 206", "/r/n9", dict(cc="max-age=60", status=206), {}, "status"),
    ("vary star", "/r/n11", dict(cc="max-age=60", vary="*"), {}, "vary"),
    ("vary on too many fields", "/r/n12",
     dict(cc="max-age=60", vary=", ".join("X-F%d" % i for i in range(17))), {}, "vary"),
    ("too large", "/r/n13", dict(cc="max-age=60", len=MAX_OBJECT + 1), {}, "too-large"),
    ("authorization", "/r/n14", dict(cc="max-age=60"), {"Authorization": "Bearer x"}, "auth"),
]


class StoringRules(EdgeTestCase):
    def setUp(self):
        super().setUp()
        self.start_edge({"cache": {"max_object_size": "1MiB"}})

    def test_stored(self):
        for name, path, params, headers in STORED:
            with self.subTest(name):
                t = url(path, **params)
                r1 = self.get(t, headers=headers)
                self.assertTrue(r1.complete, r1)
                self.assertStored(r1)
                self.assertLessEqual(r1.age(), 1, r1)  # 0, or 1 when the origin's Date second ticked over
                r2 = self.get(t, headers=headers)
                self.assertEqual(r2.status, r1.status)
                self.assertHit(r2)
                self.assertEqual(r2.body, r1.body)
                self.assertIsNotNone(r2.age())
                self.assertEqual(self.origin.count(t), 1, name)
                if r1.status in (301, 308):
                    self.assertEqual(r2.header("location"), "/r/elsewhere")

    def test_not_stored(self):
        for name, path, params, headers, detail in NOT_STORED:
            with self.subTest(name):
                t = url(path, **params)
                r1 = self.get(t, headers=headers)
                r2 = self.get(t, headers=headers)
                for r in (r1, r2):
                    self.assertTrue(r.complete, r)
                    self.assertNotStored(r, detail)
                    self.assertEqual(r.status, int(params.get("status", 200)))
                self.assertEqual(self.origin.count(t), 2, name)
                self.assertEqual(r2.header("x-origin-n"), "2")
                if "len" in params:
                    self.assertEqual(len(r1.body), params["len"])
                    self.assertBodyN(r2, 2)

    def test_set_cookie_reaches_the_client(self):
        r = self.get(url("/r/cookie", cc="max-age=60", setcookie=1))
        self.assertEqual(r.header("set-cookie"), "a=b; Path=/")

    def test_without_compression_a_cacheable_request_asks_for_identity(self):
        edge = self.make_edge({"compress": {"enabled": False}}).start()
        t = url("/r/ident", cc="max-age=60", ce="gzip")
        r = get(edge.port, t, headers={"Accept-Encoding": "gzip"})
        self.assertEqual(self.origin.last(t).header("accept-encoding"), "identity")
        self.assertEqual(r.header("content-encoding"), "gzip")
        # an origin that encodes anyway: stored as it came (opaque), served as stored
        self.assertStored(r)
        r2 = get(edge.port, t, headers={"Accept-Encoding": "gzip"})
        self.assertHit(r2)
        self.assertEqual((r2.header("content-encoding"), r2.body), ("gzip", r.body))

    def test_authorized_request_does_not_get_the_public_copy_stored_by_it(self):
        # a response to an Authorization request without public/s-maxage/must-revalidate is not stored,
        # so a later request without Authorization is a miss as well
        t = url("/r/auth-then-anon", cc="max-age=60")
        self.assertNotStored(self.get(t, headers={"Authorization": "Bearer x"}), "auth")
        r = self.get(t)
        self.assertStored(r)
        self.assertBodyN(r, 2)

    def test_chunked_too_large_is_not_stored(self):
        # the size is only known at the end: the client gets the whole body, the next request is a miss
        t = url("/r/big-chunked", cc="max-age=60", chunked=1, len=MAX_OBJECT + 4096)
        r1 = self.get(t)
        self.assertTrue(r1.complete)
        self.assertEqual(len(r1.body), MAX_OBJECT + 4096)
        r2 = self.get(t)
        self.assertEqual(r2.edge_status().get("fwd"), "miss")
        self.assertNotIn("hit", r2.edge_status())
        self.assertBodyN(r2, 2)
        self.assertEqual(self.origin.count(t), 2)

    def test_upstream_cache_status_members_come_first(self):
        t = url("/r/upstream", cc="max-age=60", cs='upstream-cache; hit; ttl=30')
        members = self.get(t).cache_status()
        self.assertEqual(len(members), 2, members)
        self.assertEqual(members[0].value, "upstream-cache")
        self.assertEqual(members[0].params, {"hit": True, "ttl": 30})
        self.assertEqual(members[1].value, "cdn-edge")
        self.assertEqual(members[1].params.get("fwd"), "miss")

    def test_head_on_uncacheable(self):
        t = url("/r/head-nostore", cc="no-store", len=100)
        r = self.request("HEAD", t)
        self.assertEqual((r.status, r.body), (200, b""))
        self.assertNotStored(r, "no-store")


if __name__ == "__main__":
    unittest.main()
