"""Parsing of `alfred -r` output and the escaping it uses.

Each record is one line:
    { "02:a1:00:00:01:02", "payload with \\"escapes\\" and \\x0a" },
and with -d (verbose) the data version is inserted before the closing brace:
    { "02:a1:00:00:01:02", "payload", 0 },
Inside the quoted payload '"' is written as \\", '\\' as \\\\ and every
byte outside the printable ASCII range as \\xNN (two lower-case hex digits).
"""

from __future__ import annotations

import re

_LINE = re.compile(rb'^\{ "([0-9a-fA-F:]{17})", "((?:[^"\\]|\\.)*)"(?:, (\d+))? \},$')


class ParseError(ValueError):
    pass


def unescape(s: bytes) -> bytes:
    out = bytearray()
    i = 0
    n = len(s)
    while i < n:
        c = s[i]
        if c != 0x5C:  # backslash
            out.append(c)
            i += 1
            continue
        if i + 1 >= n:
            raise ParseError(f"dangling backslash in {s!r}")
        e = s[i + 1]
        if e == ord("x"):
            hx = s[i + 2:i + 4]
            if len(hx) != 2:
                raise ParseError(f"short \\x escape in {s!r}")
            out.append(int(hx, 16))
            i += 4
        elif e in (ord('"'), 0x5C):
            out.append(e)
            i += 2
        else:
            raise ParseError(f"unknown escape \\{chr(e)} in {s!r}")
    return bytes(out)


def escape(data: bytes) -> bytes:
    """The escaping the reference client applies (for building expected output)."""
    out = bytearray()
    for b in data:
        if b == 0x22:
            out += b'\\"'
        elif b == 0x5C:
            out += b"\\\\"
        elif 0x20 <= b < 0x7F:
            out.append(b)
        else:
            out += b"\\x%02x" % b
    return bytes(out)


def parse_lines(text: bytes | str):
    """Yield (mac, data, version_or_None) for each record line."""
    if isinstance(text, str):
        text = text.encode("latin-1")
    for raw in text.split(b"\n"):
        if not raw.strip():
            continue
        m = _LINE.match(raw)
        if not m:
            raise ParseError(f"unparseable alfred -r line: {raw!r}")
        ver = int(m.group(3)) if m.group(3) is not None else None
        yield m.group(1).decode().lower(), unescape(m.group(2)), ver


def parse_records(text: bytes | str) -> dict[str, bytes]:
    """`alfred -r` output -> {mac: payload bytes}."""
    return {mac: data for mac, data, _ in parse_lines(text)}


def parse_records_verbose(text: bytes | str) -> dict[str, tuple[bytes, int | None]]:
    """`alfred -r -d` output -> {mac: (payload, version)}."""
    return {mac: (data, ver) for mac, data, ver in parse_lines(text)}
