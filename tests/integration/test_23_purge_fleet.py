"""Purges end to end: cdn-purge against a fleet of real edges with one node down, soft purges that revalidate, and tag
purges that cover exactly the tagged objects.

The fleet is three real cdn-edge processes (one harness Edge each, its own work dir, admin listener and token) in front
of the one test origin. Requests carry a fixed Host, so every node stores the same cache key and one purge URL names
the object on all of them. cdn-purge comes from $CDN_PURGE (default: build/purge/cdn-purge), as in test_20.
"""

import json
import os
import subprocess
import threading
import time
import unittest

from harness import SLOWDOWN, EdgeTestCase, http_request, url, wait_for
from test_20_cdn_purge import purge_binary

HOST = "fleet.example"
TOKENS = {"fra-1": "tok-fra", "ams-1": "tok-ams", "sin-1": "tok-sin"}


class FleetCase(EdgeTestCase):
    def node_get(self, edge, target):
        return http_request(edge.port, "GET", target, headers={"Host": HOST})

    def assertNodeMiss(self, edge, target, msg=None):
        before = self.origin.count(target)
        r = self.node_get(edge, target)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.edge_status().get("fwd"), "miss", msg or r)
        self.assertEqual(self.origin.count(target), before + 1, msg)
        return r

    def assertNodeHit(self, edge, target, msg=None):
        before = self.origin.count(target)
        r = self.node_get(edge, target)
        self.assertHit(r, msg)
        self.assertEqual(self.origin.count(target), before, msg)
        return r


class CdnPurgeFleet(FleetCase):
    """cdn-purge -n NODES.yaml with three real edges, one of them stopped."""

    def setUp(self):
        super().setUp()
        self.nodes = {}
        for name, token in TOKENS.items():
            d = os.path.join(self.tmp, name)
            os.makedirs(d)
            e = self.make_edge({"admin": {"address": "127.0.0.1:0", "token": token}}, workdir=d).start()
            # pin the admin port: a restarted node must be found at the address the nodes file names
            e.config["admin"]["address"] = "127.0.0.1:%d" % e.admin_port
            self.nodes[name] = e
        lines = ["nodes:"]
        for name, e in self.nodes.items():
            lines += ["  - name: %s" % name, "    admin: http://127.0.0.1:%d" % e.admin_port,
                      '    token: "%s"' % TOKENS[name]]
        self.nodes_path = os.path.join(self.tmp, "nodes.yaml")
        with open(self.nodes_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def run_purge(self, *args):
        p = subprocess.run([purge_binary(), "-n", self.nodes_path, "--timeout", "1s", "--retries", "1"] + list(args),
                           capture_output=True, stdin=subprocess.DEVNULL, timeout=60 * SLOWDOWN)
        out, err = p.stdout.decode(), p.stderr.decode()
        for token in TOKENS.values():
            self.assertNotIn(token, out + err, "a token was printed")
        lines = {}
        for line in out.splitlines():
            name, _, rest = line.partition(" ")
            self.assertNotIn(name, lines, "two lines for %s in %r" % (name, out))
            lines[name] = rest
        return p.returncode, lines, err

    def test_one_node_down_then_back(self):
        purged = url("/r/fleet/purged", cc="max-age=600")
        kept = url("/r/fleet/kept", cc="max-age=600")
        for e in self.nodes.values():
            for t in (purged, kept):
                self.assertNodeMiss(e, t)
                self.assertNodeHit(e, t)
        down = self.nodes["ams-1"]
        self.assertEqual(down.stop(), 0)

        rc, lines, err = self.run_purge("--url", "http://%s%s" % (HOST, purged))
        self.assertEqual(rc, 1, (lines, err))
        self.assertEqual(sorted(lines), sorted(TOKENS))
        self.assertRegex(lines["ams-1"], r"^FAILED .*(refused|connect).* \(2 attempts\)$")
        for name in ("fra-1", "sin-1"):
            self.assertRegex(lines[name], r"^ok id=\d+ \d+ms$")
        self.assertEqual(err.splitlines()[-1], "cdn-purge: not confirmed: ams-1")
        # the running nodes applied it: the purged URL is a miss there, the other URL still a hit
        for name in ("fra-1", "sin-1"):
            e = self.nodes[name]
            self.assertNodeMiss(e, purged, name)
            self.assertNodeHit(e, purged, name)
            self.assertNodeHit(e, kept, name)
            self.assertEqual(e.metrics().get("cdn_edge_purges_total", kind="url"), 1, name)

        # the node that was down missed the purge: it still serves the old object (why the exit status matters) ...
        down.start()
        self.assertNodeHit(down, purged, "a restarted node keeps what it stored")
        # ... until the purge is sent again, now to every node
        rc, lines, err = self.run_purge("--url", "http://%s%s" % (HOST, purged))
        self.assertEqual(rc, 0, (lines, err))
        self.assertEqual(err, "")
        for name in TOKENS:
            self.assertRegex(lines[name], r"^ok id=\d+ \d+ms$")
        for name, e in self.nodes.items():
            self.assertNodeMiss(e, purged, name)
            self.assertNodeHit(e, kept, name)

    def test_tag_purge_over_the_fleet(self):
        red = url("/r/fleet/red", cc="max-age=600", hdr="Surrogate-Key: red")
        blue = url("/r/fleet/blue", cc="max-age=600", hdr="Surrogate-Key: blue")
        for e in self.nodes.values():
            for t in (red, blue):
                self.assertNodeMiss(e, t)
        rc, lines, err = self.run_purge("--tag", "red")
        self.assertEqual(rc, 0, (lines, err))
        for name, e in self.nodes.items():
            self.assertNodeMiss(e, red, name)
            self.assertNodeHit(e, blue, name)
            self.assertEqual(e.metrics().get("cdn_edge_purges_total", kind="tag"), 1, name)


AUTH = {"Content-Type": "application/json"}


class SoftPurge(FleetCase):
    """A soft purge marks objects stale: the next request revalidates (or is served stale-while-revalidate)."""

    def setUp(self):
        super().setUp()
        self.start_edge()
        self.auth = dict(AUTH, Authorization="Bearer " + self.edge.config["admin"]["token"])

    def purge(self, body):
        r = http_request(self.edge.admin_port, "POST", "/purge", headers=self.auth, body=json.dumps(body))
        self.assertEqual(r.status, 200, r.body)
        return json.loads(r.body)

    def test_soft_url_purge_revalidates_with_the_etag(self):
        t = url("/r/soft/reval", cc="max-age=600", etag='"v1"', cond=1)
        other = url("/r/soft/other", cc="max-age=600", etag='"o1"', cond=1)
        first = self.assertNodeMiss(self.edge, t)
        self.assertNodeHit(self.edge, t)
        self.assertNodeMiss(self.edge, other)
        out = self.purge({"urls": ["http://%s%s" % (HOST, t)], "soft": True})
        self.assertTrue(out["soft"])
        self.assertEqual(out["urls"], 1)

        r = self.node_get(self.edge, t)
        self.assertEqual(r.status, 200, r)
        p = r.edge_status()
        self.assertEqual(p.get("fwd"), "stale", r)
        self.assertEqual(p.get("fwd-status"), 304, r)
        self.assertEqual(r.body, first.body, "a 304 serves the stored body")
        self.assertBodyN(r, 1)
        self.assertEqual(self.origin.count(t), 2)
        self.assertEqual(self.origin.last(t).header("if-none-match"), '"v1"')
        # freshened by the 304: a hit again (the soft purge does not keep marking it stale), nothing more sent
        wait_for(lambda: self.node_get(self.edge, t).edge_status().get("hit") is True, 5, what="a hit after the 304")
        r = self.assertNodeHit(self.edge, t)
        self.assertGreater(r.edge_status().get("ttl"), 0, r)
        self.assertEqual(self.origin.count(t), 2)
        self.assertNodeHit(self.edge, other, "a soft URL purge touches no other object")
        self.assertGreaterEqual(self.edge.metrics().get("cdn_edge_revalidations_total"), 1)

    def test_soft_tag_purge_serves_stale_while_revalidate(self):
        t = url("/r/soft/swr", cc="max-age=600, stale-while-revalidate=60", hdr="Surrogate-Key: swr-tag",
                delay_ms=700)
        untagged = url("/r/soft/swr-other", cc="max-age=600, stale-while-revalidate=60", hdr="Surrogate-Key: else")
        first = http_request(self.edge.port, "GET", t, headers={"Host": HOST}, timeout=10 * SLOWDOWN)
        self.assertStored(first)
        self.assertNodeHit(self.edge, t)
        self.assertNodeMiss(self.edge, untagged)
        out = self.purge({"tags": ["swr-tag"], "soft": True})
        self.assertTrue(out["soft"])

        started = time.monotonic()
        r = self.node_get(self.edge, t)
        elapsed = time.monotonic() - started
        self.assertEqual(r.status, 200, r)
        p = r.edge_status()
        self.assertIs(p.get("hit"), True, r)
        self.assertEqual(str(p.get("detail")), "stale-while-revalidate", r)
        self.assertLess(p.get("ttl"), 0, r)
        self.assertBodyN(r, 1)
        self.assertLess(elapsed, 0.5 * SLOWDOWN, "a stale-while-revalidate answer waited for the origin")
        # more stale requests while the revalidation is under way start no other one
        results = []
        threads = [threading.Thread(target=lambda: results.append(self.node_get(self.edge, t))) for _ in range(5)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        self.assertEqual([x.status for x in results], [200] * 5)
        wait_for(lambda: self.node_get(self.edge, t).edge_status().get("ttl", -1) > 0, 10,
                 what="the revalidated object")
        self.assertEqual(self.origin.count(t), 2, "exactly one background revalidation")
        r = self.assertNodeHit(self.edge, t)
        self.assertBodyN(r, 2)
        self.assertNodeHit(self.edge, untagged, "a soft tag purge touches no untagged object")
        self.assertGreaterEqual(self.edge.metrics().get("cdn_edge_background_revalidations_total"), 1)


class HardTagPurge(FleetCase):
    """A tag purge covers every object carrying the tag, whichever header and position it came in, and no other."""

    def setUp(self):
        super().setUp()
        self.start_edge()
        self.auth = dict(AUTH, Authorization="Bearer " + self.edge.config["admin"]["token"])

    def purge_tags(self, *tags):
        r = http_request(self.edge.admin_port, "POST", "/purge", headers=self.auth, body=json.dumps({"tags": tags}))
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(json.loads(r.body)["tags"], len(tags))

    def test_tag_purge_covers_exactly_the_tagged_objects(self):
        objs = {
            "sk_two": url("/r/tags/1", cc="max-age=600", hdr="Surrogate-Key: product-1 cat-9"),
            "sk_other": url("/r/tags/2", cc="max-age=600", hdr="Surrogate-Key: product-2 cat-7"),
            "ct_list": url("/r/tags/3", cc="max-age=600", hdr="Cache-Tag: cat-9,product-3"),
            "ct_spaced": url("/r/tags/4", cc="max-age=600", hdr="Cache-Tag: product-4, cat-7"),
            "next": url("/r/tags/5", cc="max-age=600",
                        hdr="x-next-cache-tags: _N_T_/layout,_N_T_/blog/page,_N_T_/blog"),
            "untagged": url("/r/tags/6", cc="max-age=600"),
            "similar": url("/r/tags/7", cc="max-age=600", hdr="Surrogate-Key: cat-99 cat product-1x"),
        }
        for t in objs.values():
            self.assertNodeMiss(self.edge, t)
            self.assertNodeHit(self.edge, t)

        steps = [
            # (tags purged, objects that become misses); a tag is a whole token, never a prefix or substring
            (["cat-9"], {"sk_two", "ct_list"}),
            (["cat-7"], {"sk_other", "ct_spaced"}),
            (["product-1", "product-3"], {"sk_two", "ct_list"}),
            (["_N_T_/blog"], {"next"}),
            (["nothing-has-this"], set()),
        ]
        for tags, covered in steps:
            with self.subTest(tags=tags):
                self.purge_tags(*tags)
                for name, t in objs.items():
                    if name in covered:
                        self.assertNodeMiss(self.edge, t, "%s carries one of %s" % (name, tags))
                    else:
                        self.assertNodeHit(self.edge, t, "%s does not carry %s" % (name, tags))
        # the counter counts purge items (tags), not requests
        self.assertEqual(self.edge.metrics().get("cdn_edge_purges_total", kind="tag"), sum(len(t) for t, _ in steps))


class ConfiguredTagHeaders(FleetCase):
    """purge.tag_headers: more response headers that carry purge tags; they are stripped from responses too."""

    def test_a_configured_tag_header(self):
        self.start_edge({"purge": {"tag_headers": ["X-My-Tags"]}})
        auth = dict(AUTH, Authorization="Bearer " + self.edge.config["admin"]["token"])
        tagged = url("/r/mytags", cc="max-age=600", hdr="X-My-Tags: alpha, beta")
        other = url("/r/mytags-other", cc="max-age=600", hdr="X-My-Tags: gamma")
        for t in (tagged, other):
            r = self.assertNodeMiss(self.edge, t)
            self.assertIsNone(r.header("x-my-tags"), "a tag header leaked to the client")
            wait_for(lambda: self.node_get(self.edge, t).edge_status().get("hit") is True, 5, what="a hit")
            self.assertIsNone(self.assertNodeHit(self.edge, t).header("x-my-tags"))
        r = http_request(self.edge.admin_port, "POST", "/purge", headers=auth, body=json.dumps({"tags": ["beta"]}))
        self.assertEqual(r.status, 200, r.body)
        self.assertNodeMiss(self.edge, tagged)
        self.assertNodeHit(self.edge, other)


if __name__ == "__main__":
    unittest.main()
