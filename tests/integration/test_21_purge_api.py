"""The purge API of one node: POST /purge on the admin listener and PURGE <url> on client listeners.

After each purge kind, what it covered is a miss (the origin's count grows) and what it did not is still a hit.
Also: soft purges, 401/403/400/413 (nothing changes then), a fill in flight when the purge returned, durability across
kill -9, and the counters.
"""

import json
import threading
import unittest

from harness import ADMIN_TOKEN, EdgeTestCase, http_request, url, wait_for

AUTH = {"Authorization": "Bearer " + ADMIN_TOKEN, "Content-Type": "application/json"}


class PurgeCase(EdgeTestCase):
    def purge(self, body, headers=None, edge=None):
        edge = edge or self.edge
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        return http_request(edge.admin_port, "POST", "/purge", headers=AUTH if headers is None else headers, body=data)

    def key(self, target, host=None):
        return "http://%s%s" % (host or "127.0.0.1:%d" % self.edge.port, target)

    def fill(self, *targets, host=None):
        for t in targets:
            h = {"Host": host} if host else None
            r = self.get(t, headers=h)
            self.assertEqual(r.status, 200, r)
            self.assertHit(self.get(t, headers=h))

    def assertMissNow(self, target, host=None):
        before = self.origin.count(target)
        r = self.get(target, headers={"Host": host} if host else None)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.edge_status().get("fwd"), "miss", r)
        self.assertEqual(self.origin.count(target), before + 1)

    def assertHitNow(self, target, host=None):
        before = self.origin.count(target)
        self.assertHit(self.get(target, headers={"Host": host} if host else None))
        self.assertEqual(self.origin.count(target), before)


class PurgeKinds(PurgeCase):
    def setUp(self):
        super().setUp()
        self.start_edge()

    def test_url_purge(self):
        a, b = url("/r/u/a", cc="max-age=600"), url("/r/u/b", cc="max-age=600")
        self.fill(a, b)
        r = self.purge({"urls": [self.key(a)]})
        self.assertEqual(r.status, 200, r.body)
        out = json.loads(r.body)
        self.assertEqual(out["urls"], 1)
        self.assertFalse(out["soft"])
        self.assertGreater(int(out["id"]), 0)
        self.assertMissNow(a)
        self.assertHitNow(b)
        m = self.edge.metrics()
        self.assertEqual(m.get("cdn_edge_purges_total", kind="url"), 1)
        self.assertEqual(m.get("cdn_edge_purge_requests_total", result="ok"), 1)

    def test_url_purge_normalises_like_the_key(self):
        a = url("/r/n/a", cc="max-age=600")
        self.fill(a)
        # upper-case scheme and host, an explicit default port and a dot segment: the same key
        r = self.purge({"urls": ["HTTP://127.0.0.1:%d/r/x/../n/a?%s" % (self.edge.port, a.split("?", 1)[1])]})
        self.assertEqual(r.status, 200, r.body)
        self.assertMissNow(a)

    def test_prefix_purge(self):
        p1, p2, q = url("/r/p/1", cc="max-age=600"), url("/r/p/2", cc="max-age=600"), url("/r/q/1", cc="max-age=600")
        self.fill(p1, p2, q)
        r = self.purge({"prefixes": [self.key("/r/p/")]})
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(json.loads(r.body)["prefixes"], 1)
        self.assertMissNow(p1)
        self.assertMissNow(p2)
        self.assertHitNow(q)

    def test_host_purge(self):
        t = url("/r/h", cc="max-age=600")
        self.fill(t, host="a.example")
        self.fill(t, host="b.example")
        r = self.purge({"hosts": ["A.example"]})
        self.assertEqual(r.status, 200, r.body)
        self.assertMissNow(t, host="a.example")
        self.assertHitNow(t, host="b.example")

    # The edge stores an object's tags only once the handler passes Surrogate-Key/Cache-Tag to COMMIT
    # (edge/handler.c, the lead's): until then no object is tagged and a tag purge finds nothing.
    def test_tag_purge(self):
        t1 = url("/r/t/1", cc="max-age=600", hdr="Surrogate-Key: red blue")
        t2 = url("/r/t/2", cc="max-age=600", hdr="Cache-Tag: blue")
        t3 = url("/r/t/3", cc="max-age=600", hdr="Surrogate-Key: green")
        self.fill(t1, t2, t3)
        r = self.purge({"tags": ["blue"]})
        self.assertEqual(r.status, 200, r.body)
        self.assertMissNow(t1)
        self.assertMissNow(t2)
        self.assertHitNow(t3)

    def test_purge_all(self):
        a, b = url("/r/all/a", cc="max-age=600"), url("/r/all/b", cc="max-age=600")
        self.fill(a, b)
        r = self.purge({"all": True})
        self.assertEqual(r.status, 200, r.body)
        self.assertTrue(json.loads(r.body)["all"])
        self.assertMissNow(a)
        self.assertMissNow(b)
        self.assertEqual(self.edge.metrics().get("cdn_edge_purges_total", kind="all"), 1)

    def test_several_kinds_in_one_request(self):
        a, b, c = url("/r/m/a", cc="max-age=600"), url("/r/m/b/1", cc="max-age=600"), url("/r/m/c", cc="max-age=600")
        self.fill(a, b, c)
        r = self.purge({"urls": [self.key(a)], "prefixes": [self.key("/r/m/b/")]})
        self.assertEqual(r.status, 200, r.body)
        self.assertMissNow(a)
        self.assertMissNow(b)
        self.assertHitNow(c)

    def test_soft_purge_refetches(self):
        a, b = url("/r/s/a", cc="max-age=600"), url("/r/s/b", cc="max-age=600")
        self.fill(a, b)
        r = self.purge({"urls": [self.key(a)], "soft": True})
        self.assertEqual(r.status, 200, r.body)
        self.assertTrue(json.loads(r.body)["soft"])
        # stale now: the edge goes to the origin again (today a refetch; revalidation later)
        before = self.origin.count(a)
        r = self.get(a)
        self.assertEqual(r.status, 200)
        self.assertEqual(self.origin.count(a), before + 1)
        self.assertHitNow(b)

    def test_purge_method_on_client_listener(self):
        a, b = url("/r/pm/a", cc="max-age=600"), url("/r/pm/b", cc="max-age=600")
        self.fill(a, b)
        for headers, status in (({}, 401), ({"Authorization": "Bearer nope"}, 401), ({"Authorization": "Basic dDBr"}, 401)):
            with self.subTest(headers=headers):
                r = self.request("PURGE", a, headers=headers)
                self.assertEqual(r.status, status, r)
                self.assertHitNow(a)
        r = self.request("PURGE", a, headers={"Authorization": "Bearer " + ADMIN_TOKEN})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(json.loads(r.body)["urls"], 1)
        self.assertMissNow(a)
        self.assertHitNow(b)
        self.assertEqual(self.origin.count_path("/r/pm/a") + self.origin.count_path("/r/pm/b"), 3)  # never forwarded

    # The handler takes a fill's id when the origin's head arrives (edge/handler.c, the lead's), not when the fetch
    # starts as edge/store.h asks: a purge applied while the origin is still working on the head then misses the
    # fill, which commits fresh. Remove the decorator once the id is taken in start_fetch.
    def test_purge_during_a_fill(self):
        t = url("/slow/f", cc="max-age=600", delay_ms=1500)
        first = {}
        th = threading.Thread(target=lambda: first.update(r=self.get(t)))
        th.start()
        try:
            wait_for(lambda: self.origin.count(t) == 1, 10, what="the fill to reach the origin")
            r = self.purge({"urls": [self.key(t)]})
            self.assertEqual(r.status, 200, r.body)
        finally:
            th.join()
        self.assertEqual(first["r"].status, 200)
        # the fill began before the purge: it must not be served as fresh afterwards
        r = self.get(t)
        self.assertEqual(r.edge_status().get("fwd"), "miss", r)
        self.assertEqual(self.origin.count(t), 2)


class PurgeErrors(PurgeCase):
    def setUp(self):
        super().setUp()
        self.start_edge({"purge": {"max_body": "1KiB", "max_items": 3}})
        self.a = url("/r/e/a", cc="max-age=600")
        self.fill(self.a)

    def tearDown(self):
        # whatever was refused changed nothing
        self.assertHitNow(self.a)
        self.assertEqual(self.edge.metrics().get("cdn_edge_purges_total", kind="url"), 0)

    def test_401_without_or_with_a_wrong_token(self):
        body = json.dumps({"urls": [self.key(self.a)]})
        for h in ({}, {"Authorization": "Bearer t0"}, {"Authorization": "Bearer t0kk"}, {"Authorization": "t0k"}):
            with self.subTest(h):
                r = self.purge(body, headers=h)
                self.assertEqual(r.status, 401, r)
                self.assertIn("error", json.loads(r.body))
        self.assertEqual(self.edge.metrics().get("cdn_edge_purge_requests_total", result="unauthorized"), 4)

    def test_400_with_a_reason(self):
        cases = [
            (b"{", "JSON"),
            (b"[]", ""),
            (json.dumps({"urls": [self.key(self.a)], "bogus": 1}), "bogus"),
            (json.dumps({"urls": ["ftp://x/"]}), "urls[0]"),
            (json.dumps({"urls": [self.key(self.a), "http://h/#f"]}), "urls[1]"),
            (json.dumps({"urls": [self.key("/%d" % i) for i in range(4)]}), "limit"),
            (json.dumps({"all": True, "urls": [self.key(self.a)]}), ""),
            (json.dumps({"urls": "x"}), "urls"),
            (b"", ""),
        ]
        for body, word in cases:
            with self.subTest(body=body):
                r = self.purge(body)
                self.assertEqual(r.status, 400, r)
                reason = json.loads(r.body)["error"]
                self.assertIn(word.lower(), reason.lower())

    def test_405_for_other_methods(self):
        r = http_request(self.edge.admin_port, "GET", "/purge", headers=AUTH)
        self.assertEqual(r.status, 405)

    def test_413_over_max_body(self):
        body = json.dumps({"urls": [self.key(self.a) + "&pad=" + "x" * 2000]})
        r = self.purge(body)
        self.assertEqual(r.status, 413, r)
        self.assertEqual(self.edge.metrics().get("cdn_edge_purge_requests_total", result="too_large"), 1)


class PurgeNoToken(PurgeCase):
    def test_403_when_no_token_is_configured(self):
        self.start_edge({"admin": {"address": "127.0.0.1:0", "token": None}})
        a = url("/r/nt", cc="max-age=600")
        self.fill(a)
        r = self.purge({"urls": [self.key(a)]})
        self.assertEqual(r.status, 403, r)
        self.assertEqual(json.loads(r.body)["error"], "no admin token configured")
        r = self.request("PURGE", a, headers={"Authorization": "Bearer " + ADMIN_TOKEN})
        self.assertEqual(r.status, 403, r)
        self.assertHitNow(a)


class PurgeDurability(PurgeCase):
    def test_purge_survives_kill9(self):
        self.start_edge()
        a, b = url("/r/d/a", cc="max-age=600"), url("/r/d/b", cc="max-age=600")
        self.fill(a, b, host="d.example")  # a fixed Host: the listener's port changes across restarts
        r = self.purge({"urls": ["http://d.example" + a]})
        self.assertEqual(r.status, 200, r.body)
        self.edge.kill9()  # the 200 came after the synced commit: nothing may be lost
        self.edge.start()
        self.assertHitNow(b, host="d.example")  # the cache survived the crash
        self.assertMissNow(a, host="d.example")  # and so did the purge


if __name__ == "__main__":
    unittest.main()
