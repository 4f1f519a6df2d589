"""`alfred -E` (event monitor) runner.

The reference client prints events with stdio; into a pipe that output is
block-buffered and lost when the monitor is killed.  We therefore run it on
a pseudo terminal (raw mode, so no \\n -> \\r\\n translation), which is also
what a user at a terminal sees, and collect everything it wrote.
"""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import threading
import time
import tty
from typing import Sequence

from .util import IP


class EventMonitor:
    def __init__(self, argv: Sequence[str], ns: str | None = None):
        self.argv = list(argv)
        full = ([IP, "netns", "exec", ns] if ns else []) + self.argv
        master, slave = pty.openpty()
        tty.setraw(slave)
        self._master = master
        self.proc = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                                     start_new_session=True)
        os.close(slave)
        self._buf = bytearray()
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._t = threading.Thread(target=self._reader, daemon=True)
        self._t.start()

    def _reader(self):
        try:
            while True:
                r, _, _ = select.select([self._master], [], [], 0.05)
                if r:
                    try:
                        d = os.read(self._master, 65536)
                    except OSError:  # EIO: all slave ends closed
                        break
                    if not d:
                        break
                    with self._lock:
                        self._buf += d
                elif self.proc.poll() is not None and self._done.is_set():
                    break
        finally:
            self._done.set()

    @property
    def output(self) -> bytes:
        with self._lock:
            return bytes(self._buf)

    def wait_for(self, needle: bytes, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if needle in self.output:
                return True
            time.sleep(0.02)
        return needle in self.output

    def stop(self, sig: int = signal.SIGTERM, drain: float = 0.2) -> tuple[bytes, int]:
        """Kill the monitor; returns (everything it printed, exit status)."""
        time.sleep(drain)
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(3)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(3)
        self._done.set()
        self._t.join(2)
        try:
            os.close(self._master)
        except OSError:
            pass
        return self.output, self.proc.returncode
