"""Helpers shared by the benchmark scripts (bench/bench.py, bench/scale.py): logging, free loopback ports,
RssAnon sampling from /proc, and the result table (plain or Markdown). Python 3 standard library only."""

import os
import re
import socket
import sys
import threading
import time


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    """A port that was free on 127.0.0.1 a moment ago (bound to port 0, then closed)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


H2LOAD_STATUS = re.compile(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored")


def h2load_latencies_us(logpath):
    """The durations (us) of the 200 responses in an h2load --log-file, in log order; the file is removed."""
    lats = []
    with open(logpath) as f:
        for line in f:
            parts = line.split("\t")
            if len(parts) >= 3 and parts[1] == "200":
                lats.append(int(parts[2]))
    os.unlink(logpath)
    return lats


def rss_kib(pid):
    """RssAnon of a process in KiB (0 when it is gone): LMDB's mapped pages are the page cache, not counted."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class RssSampler:
    """RssAnon (KiB) of one PID every `interval` s while running: samples [(t, kib)] and the peak."""

    def __init__(self, pid, interval=0.05):
        self.pid, self.interval, self.samples, self._stop = pid, interval, [], threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self.t0 = time.perf_counter()

    @property
    def peak(self):
        return max((k for _, k in self.samples), default=0)

    def _run(self):
        while not self._stop.is_set():
            self.samples.append((time.perf_counter() - self.t0, rss_kib(self.pid)))
            self._stop.wait(self.interval)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.samples.append((time.perf_counter() - self.t0, rss_kib(self.pid)))


def print_table(header, table, markdown):
    """One table: Markdown, or plain columns (first left-aligned, the others right-aligned)."""
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join(" --- " for _ in header) + "|")
        for cells in table:
            print("| " + " | ".join(str(c) for c in cells) + " |")
        return
    widths = [max(len(str(c[i])) for c in [header] + table) for i in range(len(header))]
    for cells in [header] + table:
        print("  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip())
