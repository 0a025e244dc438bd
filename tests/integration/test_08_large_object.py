"""A 512 MiB object streams through a miss and a hit byte-intact while the edge's anonymous memory stays small.

The body is generated piece by piece by the origin (origin_server.big_body_pieces) and hashed by
`sha256sum` reading curl's output, so neither side holds it in memory. ctest label: slow.
"""

import os
import subprocess
import time
import unittest

import harness
from harness import SANITIZE, SLOWDOWN, EdgeTestCase, MemoryMonitor, url
from origin_server import big_body_sha256

SIZE = 512 << 20
RSS_ANON_LIMIT_KB = 48 << 10


class LargeObject(EdgeTestCase):
    def fetch(self, target):
        """GETs target with curl piped into sha256sum; returns (sha256 hex, bytes, Response of the head, seconds)."""
        hfile = os.path.join(self.tmp, "large.headers")
        t0 = time.monotonic()
        curl = subprocess.Popen(["curl", "-sS", "--max-time", str(int(300 * SLOWDOWN)), "-D", hfile, "-o", "-",
                                 "-w", "%{stderr}size=%{size_download}\n",
                                 "http://127.0.0.1:%d%s" % (self.edge.port, target)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        sha = subprocess.Popen(["sha256sum"], stdin=curl.stdout, stdout=subprocess.PIPE)
        curl.stdout.close()
        out, _ = sha.communicate(timeout=400 * SLOWDOWN)
        curl_err = curl.stderr.read().decode()
        curl.stderr.close()
        curl.wait(30)
        elapsed = time.monotonic() - t0
        self.assertEqual(curl.returncode, 0, "curl failed: %s" % curl_err)
        nbytes = int(curl_err.strip().rsplit("size=", 1)[1])
        with open(hfile, "rb") as f:
            blocks = [b for b in f.read().decode("latin-1").split("\r\n\r\n") if b.strip()]
        lines = blocks[-1].split("\r\n")
        headers = [tuple(s.strip() for s in l.split(":", 1)) for l in lines[1:] if ":" in l]
        resp = harness.Response(int(lines[0].split()[1]), headers, b"", True, "1.1")
        return out.split()[0].decode(), nbytes, resp, elapsed

    def test_512mib_miss_then_hit(self):
        self.start_edge({"cache": {"max_size": "2GiB", "max_object_size": "1GiB"},
                         "origin": {"idle_timeout": "10s", "first_byte_timeout": "10s"}})
        t = url("/big/large", size=SIZE, cc="max-age=3600")
        expected = big_body_sha256(SIZE)
        results = {}
        for mode in ("miss", "hit"):
            with MemoryMonitor(self.edge.pid) as mon:
                digest, nbytes, resp, secs = self.fetch(t)
            results[mode] = (mon.peak, secs)
            self.assertEqual(resp.status, 200, mode)
            self.assertEqual(nbytes, SIZE, mode)
            self.assertEqual(digest, expected, "%s: body differs from what the origin sent" % mode)
            if mode == "miss":
                self.assertEqual(self.origin.sent_sha256.get(t), expected)
                self.assertStored(resp)
            else:
                self.assertHit(resp)
            self.assertGreater(mon.samples, 5, "memory was not sampled during the %s" % mode)
            msg = "%s: peak RssAnon %d kB, VmRSS %d kB, %.1fs" % (mode, mon.peak["RssAnon"], mon.peak["VmRSS"], secs)
            print(msg, flush=True)
            if not SANITIZE:
                self.assertLess(mon.peak["RssAnon"], RSS_ANON_LIMIT_KB, msg)
        self.assertEqual(self.origin.count(t), 1)


if __name__ == "__main__":
    unittest.main()
