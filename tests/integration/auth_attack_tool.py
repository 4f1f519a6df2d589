"""What an attacker on an authenticated mesh's link tries (issue 11), as one
small program run inside an attacker's namespace by test_auth.py.

    capture OUT SECONDS          keep every sealed datagram heard on port
                                 16962 (multicast announcements included),
                                 with its source address, in OUT (json)
    replay IN TARGET [SRC]       send them again to TARGET (an IPv6
                                 link-local address on mesh0), from our own
                                 address or, with SRC, from SRC (the
                                 sealer's address, added beforehand)
    inject TARGET MACPREFIX N    plain alfred: announce as a primary, then
                                 push N records under N spoofed source MACs
                                 (MACPREFIX:xx) with their txend, answer-
                                 style (a txend for a request id too)
    flood IN TARGET N FROM       N forged sealed datagrams: the key id of one
                                 captured from FROM, our MAC, garbage after it

Every datagram is sent as it is: nothing here holds a key.
"""

from __future__ import annotations

import json
import os
import random
import select
import socket
import struct
import sys
import time

PORT = 16962
IFACE = "mesh0"


def _scope() -> int:
    return socket.if_nametoindex(IFACE)


def _sock(src: str | None = None) -> socket.socket:
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, IFACE.encode())
    if src:
        s.bind((src, 0, 0, _scope()))
    return s


def capture(out: str, seconds: float) -> None:
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, IFACE.encode())
    s.bind(("::", PORT, 0, 0))
    mreq = socket.inet_pton(socket.AF_INET6, "ff02::1") + struct.pack("@I", _scope())
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
    got = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        r, _, _ = select.select([s], [], [], max(0.0, end - time.monotonic()))
        if not r:
            break
        data, addr = s.recvfrom(70000)
        if len(data) >= 2 and data[0] == 0xA5 and data[1] == 0x41:
            got.append({"from": addr[0].split("%")[0], "hex": data.hex()})
    with open(out, "w") as f:
        json.dump(got, f)
    print(f"captured {len(got)} sealed datagram(s)")


def replay(inp: str, target: str, src: str | None) -> None:
    with open(inp) as f:
        got = json.load(f)
    s = _sock(src)
    for g in got:
        s.sendto(bytes.fromhex(g["hex"]), (target, PORT, 0, _scope()))
    print(f"replayed {len(got)} datagram(s)")


def _tlv(ptype: int, body: bytes) -> bytes:
    return struct.pack("!BBH", ptype, 0, len(body)) + body


def inject(target: str, prefix: str, n: int) -> None:
    s = _sock()
    dst = (target, PORT, 0, _scope())
    s.sendto(_tlv(1, b""), dst)  # announce primary
    base = bytes.fromhex(prefix.replace(":", ""))
    for tx in (0x4141, 0x4242):
        records = b""
        for i in range(n):
            data = b"forged %d" % i
            records += base + bytes([i]) + struct.pack("!BBH", 64, 0, len(data)) + data
        s.sendto(_tlv(0, struct.pack("!HH", tx, 0) + records), dst)
        s.sendto(_tlv(3, struct.pack("!HH", tx, 1)), dst)
    print(f"injected {n} record(s) twice")


def flood(inp: str, target: str, n: int, template_from: str) -> None:
    with open(inp) as f:
        got = [g for g in json.load(f) if g["from"] == template_from]
    if not got:
        raise SystemExit(f"no sealed datagram of {template_from} captured")
    head = bytearray(bytes.fromhex(got[0]["hex"])[:22])
    # Our own MAC where the sealer's was: past the MAC check, so each one
    # costs the receiver its key lookup and one tag check.
    with open(f"/sys/class/net/{IFACE}/address") as f:
        head[8:14] = bytes.fromhex(f.read().strip().replace(":", ""))
    head = bytes(head)
    s = _sock()
    dst = (target, PORT, 0, _scope())
    rnd = random.Random(7)
    for i in range(n):
        body = os.urandom(24 + 16 + rnd.randrange(0, 200))
        d = bytearray(head + body)
        struct.pack_into("!H", d, 2, len(d) - 4)
        struct.pack_into("!Q", d, 14, rnd.getrandbits(64))
        s.sendto(bytes(d), dst)
    print(f"flooded {n} forged datagram(s)")


def main(argv: list[str]) -> None:
    cmd = argv[1]
    if cmd == "capture":
        capture(argv[2], float(argv[3]))
    elif cmd == "replay":
        replay(argv[2], argv[3], argv[4] if len(argv) > 4 else None)
    elif cmd == "inject":
        inject(argv[2], argv[3], int(argv[4]))
    elif cmd == "flood":
        flood(argv[2], argv[3], int(argv[4]), argv[5])
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main(sys.argv)
