"""Shared helpers for the integration tests (imported by conftest and tests)."""

from __future__ import annotations

import difflib
import os
import shlex
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
if os.path.join(ROOT, "lab") not in sys.path:
    sys.path.insert(0, os.path.join(ROOT, "lab"))

from alfredlab import alfred_bin, debian_bin  # noqa: E402

PERIOD = 1  # -p for every daemon in these tests


def ours() -> str:
    return alfred_bin()


def debian() -> str:
    return debian_bin()


def our_flags() -> list[str]:
    """Extra daemon flags for ALFRED_BIN only (env ALFRED_FLAGS, shell-quoted)."""
    return shlex.split(os.environ.get("ALFRED_FLAGS", ""))


def flags_for(binary: str) -> list[str]:
    return our_flags() if binary == ours() else []


def show(b: bytes, limit: int = 4000) -> str:
    s = b.decode("utf-8", errors="backslashreplace")
    return s if len(s) <= limit else s[:limit] + f"... ({len(s) - limit} more chars)"


def text_diff(expected: bytes, got: bytes, a: str = "expected", b: str = "got") -> str:
    e = expected.decode("utf-8", errors="backslashreplace").splitlines(keepends=True)
    g = got.decode("utf-8", errors="backslashreplace").splitlines(keepends=True)
    d = "".join(difflib.unified_diff(e, g, a, b, n=2))
    return d if len(d) < 6000 else d[:6000] + "\n... (diff truncated)"
