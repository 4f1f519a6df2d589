"""Host-wide sysctls the lab has to raise temporarily, shared between
parallel lab runs.

net.core.wmem_default is not per network namespace (writing it inside a
namespace fails with EINVAL), yet it is the send buffer of every unix datagram
socket VDE uses: with the default 208 KiB a burst of IPv6 fragments (one
64 KiB alfred packet = ~50 frames) is silently dropped inside VDE even at 0 %
configured loss.  The neighbour-table GC thresholds are host-wide as well
(see _NEIGH below).  We raise them while at least one lab run is alive and restore
the original value when the last one ends.

Bookkeeping lives in STATE_DIR/hostsysctl.json, guarded by an flock:
  {"orig": {"net.core.wmem_default": "212992"}, "users": ["pid/run", ...]}
Users whose pid is dead are pruned on every acquire/release, so a crashed run cannot keep
the host modified forever (the next run, or `alfred-lab cleanup`, restores).
"""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager

from .util import pid_alive

STATE_DIR = "/run/alfred-lab"
STATE = os.path.join(STATE_DIR, "hostsysctl.json")
LOCK = os.path.join(STATE_DIR, "hostsysctl.lock")

# The neighbour tables (ARP, NDP) are shared by all network namespaces and
# their garbage-collection thresholds are host-wide too (only settable in the
# initial namespace).  With the default gc_thresh3 = 1024 a 33-node lab
# (33 * 32 entries per family) overflows the table ("neighbor table overflow!"
# in dmesg) and neighbour filling fails; 250 nodes need ~62000 per family.
_NEIGH = {}
for _fam in ("ipv4", "ipv6"):
    # raised largest first, restored in reverse order (thresh1 <= 2 <= 3)
    _NEIGH[f"net.{_fam}.neigh.default.gc_thresh3"] = 65536
    _NEIGH[f"net.{_fam}.neigh.default.gc_thresh2"] = 32768
    _NEIGH[f"net.{_fam}.neigh.default.gc_thresh1"] = 16384

# key -> minimum value wanted while the lab runs
WANTED = {
    "net.core.wmem_default": 4194304,
    **_NEIGH,
}


def _path(key: str) -> str:
    return "/proc/sys/" + key.replace(".", "/")


def _read(key: str) -> str:
    with open(_path(key)) as f:
        return f.read().strip()


def _write(key: str, val) -> None:
    with open(_path(key), "w") as f:
        f.write(str(val))


@contextmanager
def _locked():
    os.makedirs(STATE_DIR, exist_ok=True)
    fd = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            with open(STATE) as f:
                st = json.load(f)
        except (OSError, ValueError):
            st = {"orig": {}, "users": []}
        yield st
        if st["users"]:
            tmp = STATE + ".tmp"
            with open(tmp, "w") as f:
                json.dump(st, f)
            os.replace(tmp, STATE)
        else:
            try:
                os.unlink(STATE)
            except FileNotFoundError:
                pass
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _restore_if_unused(st) -> None:
    st["users"] = [u for u in st["users"] if pid_alive(int(str(u).split("/")[0]))]
    if not st["users"]:
        for key, val in reversed(list(st["orig"].items())):
            try:
                _write(key, val)
            except OSError:
                pass
        st["orig"] = {}


def acquire(token: str) -> None:
    """Register user `token` ("<pid>/<run id>") and raise the sysctls."""
    with _locked() as st:
        _restore_if_unused(st)
        for key, want in WANTED.items():
            if key not in st["orig"]:
                st["orig"][key] = _read(key)
            cur = int(_read(key).split()[0])
            if cur < want:
                _write(key, want)
        if token not in st["users"]:
            st["users"].append(token)


def release(token: str) -> None:
    with _locked() as st:
        st["users"] = [u for u in st["users"] if u != token]
        _restore_if_unused(st)


def cleanup_stale() -> None:
    """Restore host values if no live lab run uses them any more."""
    with _locked() as st:
        _restore_if_unused(st)
