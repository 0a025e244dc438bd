"""Configured keying rules: the query in the key (cache.query: keep / sort / ignore, cache.query_drop) and whether
a client's own Cache-Control may send it to the origin (cache.honor_client_no_cache)."""

import json
import unittest

from harness import EdgeTestCase, http_request, url, wait_for


class KeyRules(EdgeTestCase):
    def test_sorted_query_and_dropped_parameters(self):
        self.start_edge({"cache": {"query": "sort", "query_drop": ["utm_source", "fbclid"]},
                         "admin": {"token": "t0k"}})
        a = "/r/q?b=2&a=1&utm_source=mail&cc=max-age%3D600"
        self.assertStored(self.get(a))
        self.hit_eventually("/r/q?a=1&b=2&cc=max-age%3D600")
        self.hit_eventually("/r/q?fbclid=zz&cc=max-age%3D600&b=2&a=1")
        self.assertEqual(self.origin.count(a), 1)
        self.assertEqual(self.origin.last(a).target, a, "the origin gets the query as sent")
        # a purge of the URL in another spelling covers it: URLs are keyed the same way
        r = http_request(self.edge.admin_port, "POST", "/purge", headers={"Authorization": "Bearer t0k"},
                         body=json.dumps({"urls": ["http://127.0.0.1:%d/r/q?cc=max-age%%3D600&a=1&b=2" % self.edge.port]}))
        self.assertEqual(r.status, 200, r.body)
        self.assertNotIn("hit", self.get("/r/q?b=2&a=1&cc=max-age%3D600").edge_status())

    def test_ignored_query(self):
        self.start_edge({"cache": {"query": "ignore"}})
        self.assertStored(self.get("/r/ign?cc=max-age%3D600&v=1"))
        self.hit_eventually("/r/ign?v=2")
        self.hit_eventually("/r/ign")

    def test_default_keeps_the_raw_query(self):
        self.start_edge()
        self.assertStored(self.get("/r/keep?b=2&a=1&cc=max-age%3D600"))
        self.hit_eventually("/r/keep?b=2&a=1&cc=max-age%3D600")
        self.assertStored(self.get("/r/keep?a=1&b=2&cc=max-age%3D600"))

    def test_many_targets_each_keep_their_own_object(self):
        # more targets than a worker's caches of recent keys, store lookups and decoded heads have slots
        # (edge/handler.c request_key_hash and decode_head, edge/store.c edge_store_get), hosts in two spellings of
        # one key and two different hosts: every response is the one stored for its own key, head and body
        self.start_edge({"workers": 1})
        hosts = {"Site-A.test": "site-a.test", "SITE-A.TEST": "site-a.test", "site-b.test": "site-b.test"}
        # a body length, an ETag and a field that is no h2o token of its own per target: responses differ
        targets = [(h, url("/r/many/%d" % i, cc="max-age=600", len=100 + 2 * i + (h == "site-b.test"),
                           etag='"e%d-%s"' % (i, h), hdr="X-Target-Id: %d-%s" % (i, h)))
                   for i in range(200) for h in ("Site-A.test", "site-b.test")]
        stored = {}
        for host, t in targets:
            r = self.get(t, headers={"Host": host})
            self.assertStored(r)
            stored[(hosts[host], t)] = (r.body, r.header("etag"), r.header("x-target-id"))
        self.assertEqual(len(set(stored.values())), len(targets), "each target has an origin response of its own")
        wait_for(lambda: self.get(targets[-1][1], headers={"Host": targets[-1][0]}).edge_status().get("hit") is True, 5,
                 what="the last fill committed")
        for rnd in range(2):
            for i, (host, t) in enumerate(reversed(targets)):
                spelled = "SITE-A.TEST" if host == "Site-A.test" and (i + rnd) % 2 else host
                r = self.get(t, headers={"Host": spelled})
                self.assertHit(r, (spelled, t))
                self.assertEqual((r.body, r.header("etag"), r.header("x-target-id")), stored[(hosts[host], t)],
                                 (spelled, t))
        self.assertEqual(sum(self.origin.count(t) for t in set(t for _, t in targets)), len(targets))

    def test_client_no_cache_is_ignored_by_default(self):
        self.start_edge()
        t = url("/r/cnc", cc="max-age=600")
        self.assertStored(self.get(t))
        self.hit_eventually(t)
        self.assertHit(self.get(t, headers={"Cache-Control": "no-cache"}))
        self.assertHit(self.get(t, headers={"Cache-Control": "max-age=0"}))
        self.assertEqual(self.origin.count(t), 1)

    def test_client_no_cache_honoured_when_configured(self):
        self.start_edge({"cache": {"honor_client_no_cache": True}})
        t = url("/r/cnc-on", cc="max-age=600", etag='"c1"', cond=1)
        self.assertStored(self.get(t))
        self.hit_eventually(t)
        r = self.get(t, headers={"Cache-Control": "no-cache"})
        self.assertEqual(r.edge_status().get("fwd"), "request", r)
        self.assertEqual(r.edge_status().get("fwd-status"), 304, r)
        self.assertEqual(self.origin.count(t), 2)
        self.assertEqual(self.origin.last(t).header("if-none-match"), '"c1"')


if __name__ == "__main__":
    unittest.main()
