"""Request coalescing (DESIGN.md: exactly one origin fetch per key at a time, across worker threads): many clients
of one cold object share one fill and read its bytes as they arrive."""

import hashlib
import http.client
import threading
import time
import unittest

from harness import SLOWDOWN, EdgeTestCase, url
from origin_server import big_body_sha256


class Coalescing(EdgeTestCase):
    def test_200_clients_one_origin_request(self):
        edge = self.start_edge()
        size = 1 << 20
        t = url("/big/herd", size=size, cc="max-age=600", delay_ms=500, ct="application/octet-stream")
        want = big_body_sha256(size)
        results = []
        lock = threading.Lock()
        barrier = threading.Barrier(200)

        def client():
            barrier.wait()
            conn = http.client.HTTPConnection("127.0.0.1", edge.port, timeout=60 * SLOWDOWN)
            try:
                conn.request("GET", t)
                resp = conn.getresponse()
                h = hashlib.sha256()
                n = 0
                while True:
                    c = resp.read(1 << 16)
                    if not c:
                        break
                    h.update(c)
                    n += len(c)
                with lock:
                    results.append((resp.status, n, h.hexdigest()))
            finally:
                conn.close()

        threads = [threading.Thread(target=client) for _ in range(200)]
        started = time.monotonic()
        for th in threads:
            th.start()
        for th in threads:
            th.join(120 * SLOWDOWN)
        elapsed = time.monotonic() - started
        self.assertEqual(len(results), 200)
        self.assertTrue(all(r == (200, size, want) for r in results), "a client got a wrong or partial body")
        self.assertEqual(self.origin.count(t), 1, "exactly one origin request for 200 clients")
        print("200 clients, one 1 MiB object behind a 500 ms origin: %.2f s" % elapsed)

    def test_waiters_read_while_the_origin_still_sends(self):
        # the origin sends 300 KiB of 1 MiB and stalls: every waiting client already has those bytes
        edge = self.start_edge({"origin": {"idle_timeout": "30s"}})
        sent = 300 << 10
        t = url("/stall-after/rww", size=1 << 20, bytes=sent, cc="max-age=600", ct="application/octet-stream")
        got = {}
        lock = threading.Lock()
        conns = []

        def client(i):
            conn = http.client.HTTPConnection("127.0.0.1", edge.port, timeout=30 * SLOWDOWN)
            conns.append(conn)
            conn.request("GET", t)
            resp = conn.getresponse()
            n = 0
            while n < sent - (64 << 10):
                c = resp.read1(1 << 16)
                if not c:
                    break
                n += len(c)
            with lock:
                got[i] = n

        threads = [threading.Thread(target=client, args=(i,)) for i in range(20)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60 * SLOWDOWN)
        self.addCleanup(lambda: [c.close() for c in conns])
        self.assertEqual(len(got), 20)
        # the client that started the fill reads its memory; the others read what is committed, which lags by at
        # most the chunk still filling (64 KiB)
        self.assertTrue(all(n >= sent - (64 << 10) for n in got.values()), got)
        self.assertEqual(self.origin.count(t), 1)
        self.assertTrue(self.origin.wait_stalled(t, 1), "the origin had not stalled: nothing was proved")


if __name__ == "__main__":
    unittest.main()
