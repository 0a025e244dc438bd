"""SIGTERM drains in-flight requests within drain_timeout; the write watchdog ends responses whose
client takes no bytes (h2o 2.2.5 has no write timeout of its own)."""

import socket
import threading
import time
import unittest

from harness import SLOWDOWN, EdgeTestCase, http_request, url, wait_for


class ShutdownWatchdog(EdgeTestCase):
    def test_sigterm_lets_an_in_flight_request_finish(self):
        edge = self.start_edge({"drain_timeout": "10s"})
        t = url("/slow/drain", delay_ms=1500, cc="max-age=60")
        result = {}

        def fetch():
            result["r"] = http_request(edge.port, "GET", t, timeout=20 * SLOWDOWN)

        th = threading.Thread(target=fetch)
        th.start()
        wait_for(lambda: self.origin.count(t) == 1, 5 * SLOWDOWN, what="the request reaching the origin")
        started = time.monotonic()
        rc = edge.stop(timeout=15)
        th.join(20 * SLOWDOWN)
        self.assertEqual(rc, 0)
        r = result.get("r")
        self.assertIsNotNone(r, "the in-flight request got no response")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.complete, r)
        self.assertBodyN(r, 1)
        # it waited for the request, not for the whole deadline
        self.assertLess(time.monotonic() - started, 8 * SLOWDOWN)

    def test_drain_deadline_bounds_the_exit(self):
        edge = self.start_edge({"drain_timeout": "1s", "origin": {"idle_timeout": "30s"}})
        t = url("/stall-after/deadline", size=4 << 20, bytes=1 << 20, cc="max-age=60")
        sock = socket.create_connection(("127.0.0.1", edge.port), timeout=10 * SLOWDOWN)
        self.addCleanup(sock.close)
        sock.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (t, edge.port)).encode())
        self.assertTrue(self.origin.wait_stalled(t, 10 * SLOWDOWN))
        started = time.monotonic()
        rc = edge.stop(timeout=20)
        elapsed = time.monotonic() - started
        self.assertEqual(rc, 0)
        self.assertGreaterEqual(elapsed, 0.9, "the edge did not wait for the in-flight fill at all")
        self.assertLess(elapsed, 5 * SLOWDOWN, "the drain deadline was not enforced")

    def test_new_connections_are_refused_while_draining(self):
        edge = self.start_edge({"drain_timeout": "10s"})
        t = url("/slow/refuse", delay_ms=2000, cc="max-age=60")
        th = threading.Thread(target=lambda: http_request(edge.port, "GET", t, timeout=20 * SLOWDOWN))
        th.start()
        wait_for(lambda: self.origin.count(t) == 1, 5 * SLOWDOWN, what="the request reaching the origin")
        edge.sigterm()

        def refused():
            try:
                socket.create_connection(("127.0.0.1", edge.port), timeout=1).close()
                return False
            except OSError:
                return True

        wait_for(refused, 5 * SLOWDOWN, what="the listener closing after SIGTERM")
        th.join(20 * SLOWDOWN)
        self.assertEqual(edge.stop(timeout=15), 0)

    def test_watchdog_closes_a_client_that_stopped_reading(self):
        edge = self.start_edge({"write_timeout": "1s", "cache": {"max_object_size": "128MiB"}})
        t = url("/big/watchdog", size=64 << 20, cc="max-age=600")
        r = self.get(t, timeout=60 * SLOWDOWN)  # fill it: the stuck client below reads a hit
        self.assertEqual(len(r.body), 64 << 20)
        self.assertEqual(edge.metrics().get("cdn_edge_watchdog_closes_total"), 0)

        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(30 * SLOWDOWN)
        sock.connect(("127.0.0.1", edge.port))
        self.addCleanup(sock.close)
        sock.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (t, edge.port)).encode())
        self.assertTrue(sock.recv(1024).startswith(b"HTTP/1.1 200"))
        # stop reading: the edge's send stays outstanding until the watchdog ends the response
        wait_for(lambda: edge.metrics().get("cdn_edge_watchdog_closes_total") >= 1, 15 * SLOWDOWN,
                 what="the write watchdog to fire")
        # the connection is closed: draining what the kernel buffered ends in EOF or a reset
        got = 0
        try:
            while True:
                c = sock.recv(1 << 20)
                if not c:
                    break
                got += len(c)
        except (ConnectionResetError, socket.timeout) as e:
            self.assertNotIsInstance(e, socket.timeout, "the connection was not closed")
        self.assertLess(got, 64 << 20, "the whole body went through: the watchdog did nothing")
        # the edge is still serving
        self.assertHit(self.get(t, timeout=60 * SLOWDOWN))


if __name__ == "__main__":
    unittest.main()
