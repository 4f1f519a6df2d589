"""Small helpers shared by the lab modules (stdlib only)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from typing import Iterable, Sequence

IP = "/usr/sbin/ip" if os.path.exists("/usr/sbin/ip") else (shutil.which("ip") or "ip")


class LabError(RuntimeError):
    """Any failure of the lab itself (as opposed to a failure of alfred)."""


def _fmt(cmd: Sequence[str]) -> str:
    return " ".join(c if c and all(ch.isalnum() or ch in "-_./:=,%@+" for ch in c) else repr(c) for c in cmd)


def run(cmd: Sequence[str], *, ns: str | None = None, check: bool = True,
        input: bytes | None = None, timeout: float = 30.0,
        capture: bool = True) -> subprocess.CompletedProcess:
    """Run a command (optionally inside network namespace `ns`)."""
    full = list(cmd)
    if ns is not None:
        full = [IP, "netns", "exec", ns] + full
    try:
        cp = subprocess.run(full, input=input, timeout=timeout,
                            stdout=subprocess.PIPE if capture else None,
                            stderr=subprocess.PIPE if capture else None)
    except subprocess.TimeoutExpired as e:
        raise LabError(f"command timed out after {timeout}s: {_fmt(full)}") from e
    if check and cp.returncode != 0:
        err = (cp.stderr or b"").decode(errors="replace").strip()
        out = (cp.stdout or b"").decode(errors="replace").strip()
        raise LabError(f"command failed (exit {cp.returncode}): {_fmt(full)}\n"
                       f"  stderr: {err}\n  stdout: {out}")
    return cp


def ip(*args: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return run([IP] + list(args), ns=ns, check=check)


def wait_for(pred, timeout: float, interval: float = 0.02, what: str = "condition"):
    """Poll pred() until truthy; returns its value or raises LabError."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise LabError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # zombies count as dead
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
        return st[st.rfind(")") + 2] != "Z"
    except OSError:
        return False


def tail(path: str, lines: int = 40) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return f"<cannot read {path}: {e}>"
    txt = data.decode(errors="replace").splitlines()
    if len(txt) > lines:
        txt = [f"... ({len(txt) - lines} earlier lines)"] + txt[-lines:]
    return "\n".join(txt)


def eprint(*a, **kw):
    print(*a, file=sys.stderr, flush=True, **kw)


def mac_str(b: Iterable[int]) -> str:
    return ":".join(f"{x:02x}" for x in b)


def mac_bytes(s: str) -> bytes:
    parts = s.split(":")
    if len(parts) != 6:
        raise ValueError(f"bad mac {s!r}")
    return bytes(int(p, 16) for p in parts)


def eui64_linklocal(mac: str) -> str:
    """fe80:: address the kernel derives from `mac` (addr_gen_mode eui64)."""
    b = bytearray(mac_bytes(mac))
    b[0] ^= 0x02
    e = bytes(b[:3]) + b"\xff\xfe" + bytes(b[3:])
    groups = [f"{(e[i] << 8) | e[i + 1]:x}" for i in range(0, 8, 2)]
    # canonical form (no zero-compression needed for our deterministic MACs
    # except leading zero groups); use ipaddress for exact formatting
    import ipaddress
    return str(ipaddress.IPv6Address("fe80::" + ":".join(groups)))
