"""The embedded default: `cdn-edge` with no -c listens on 8080 / 8443 (TLS, self-signed) / 8081 (admin) and
serves conf/example-site relative to its working directory, through the cache.

The ports are fixed, so this test needs them free on 127.0.0.1; it fails (never skips) when they are not.
"""

import os
import shutil
import unittest

import harness
from harness import Edge, EdgeTestCase, curl, http_request

PORTS = (8080, 8443, 8081)


class EmbeddedDefault(EdgeTestCase):
    def test_default_serves_example_site(self):
        busy = [p for p in PORTS if not harness.port_is_free(p)]
        self.assertEqual(busy, [], "ports %s on 127.0.0.1 are in use: the embedded-default test needs 8080, 8443 "
                                   "and 8081 free (stop whatever listens there)" % busy)
        site = os.path.join(harness.source_dir(), "conf", "example-site")
        self.assertTrue(os.path.isdir(site), "no %s" % site)
        os.makedirs(os.path.join(self.tmp, "conf"))
        shutil.copytree(site, os.path.join(self.tmp, "conf", "example-site"))

        edge = Edge(self.tmp, None, assumed_ready={
            "listen": [{"address": "127.0.0.1:8080", "tls": False}, {"address": "127.0.0.1:8443", "tls": True}],
            "admin": "127.0.0.1:8081"})
        self.edges.append(edge)
        self.edge = edge.start()

        r1 = http_request(8080, "GET", "/")
        self.assertEqual(r1.status, 200, r1)
        self.assertStored(r1)
        self.assertEqual(r1.age(), 0)
        r2 = http_request(8080, "GET", "/")
        self.assertEqual(r2.status, 200)
        self.assertHit(r2)
        self.assertEqual(r2.body, r1.body)
        index = os.path.join(site, "index.html")
        if os.path.exists(index):
            with open(index, "rb") as f:
                self.assertEqual(r1.body, f.read())
        self.assertTrue(r1.body, "GET / served an empty body")

        r = curl("https://127.0.0.1:8443/", ["-k", "--http2"], workdir=self.tmp)
        self.assertTrue(r.complete, r.error)
        self.assertEqual((r.version, r.status), ("2", 200))
        self.assertEqual(r.body, r1.body)

        r = http_request(8080, "GET", "/no-such-file-here")
        self.assertEqual(r.status, 404)

        # the default keeps its cache and certificate under var/ in the working directory
        self.assertTrue(os.path.isdir(os.path.join(self.tmp, "var", "cache")))
        self.assertTrue(os.path.exists(os.path.join(self.tmp, "var", "tls", "cert.pem")))
        self.assertEqual(edge.stop(), 0)


if __name__ == "__main__":
    unittest.main()
