"""Raw client side of alfred's unix-socket protocol (independent of any
alfred client binary), used to inject records the command-line client cannot
produce (types 0..63, e.g. batadv-vis' type 1) and as an independent reader.

Every packet starts with a TLV header: type u8, version u8, length BE16
(length counts the bytes after the TLV header).

  push_data (type 0): TLV + tx{id BE16, seqno BE16} + records...
      record: source mac[6], TLV{type u8, version u8, length BE16}, payload
  request   (type 2): TLV + requested_type u8 + tx_id BE16
  status_txend (3) / status_error (4): TLV + tx{id BE16, seqno BE16}
"""

from __future__ import annotations

import os
import random
import socket
import struct
import time

PUSH_DATA = 0
ANNOUNCE_PRIMARY = 1
REQUEST = 2
STATUS_TXEND = 3
STATUS_ERROR = 4
MODESWITCH = 5
CHANGE_INTERFACE = 6
CHANGE_BAT_IFACE = 7
SERVER_STATUS = 8
EVENT_REGISTER = 9
EVENT_NOTIFY = 10

ZERO_MAC = b"\x00" * 6


def record(rtype: int, payload: bytes, version: int = 0, source: bytes = ZERO_MAC) -> bytes:
    if len(source) != 6:
        raise ValueError("source mac must be 6 bytes")
    return source + struct.pack("!BBH", rtype, version, len(payload)) + payload


def push_packet(records: list[bytes], tx_id: int | None = None, seqno: int = 0) -> bytes:
    tx_id = random.randrange(0x10000) if tx_id is None else tx_id
    body = struct.pack("!HH", tx_id, seqno) + b"".join(records)
    if len(body) > 0xFFFF:
        raise ValueError("push packet too large")
    return struct.pack("!BBH", PUSH_DATA, 0, len(body)) + body


def request_packet(rtype: int, tx_id: int | None = None) -> bytes:
    tx_id = random.randrange(0x10000) if tx_id is None else tx_id
    return struct.pack("!BBH", REQUEST, 0, 3) + struct.pack("!BH", rtype, tx_id)


def _connect(sock_path: str, timeout: float) -> socket.socket:
    """Connect with a timeout.  A socket with a timeout is non-blocking, and a
    non-blocking AF_UNIX connect fails with EAGAIN at once when the daemon's
    listen backlog is full (seen with Debian's alfred when 60 records are
    pushed back to back); a blocking one would wait, so retry until
    `timeout`."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(sock_path)
            return s
        except BlockingIOError:
            s.close()
            if time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
        except BaseException:
            s.close()
            raise


def send_raw(sock_path: str, packet: bytes, timeout: float = 5.0) -> None:
    """Connect, write one packet, close (what a setter client does)."""
    with _connect(sock_path, timeout) as s:
        s.sendall(packet)


def push(sock_path: str, rtype: int, payload: bytes, version: int = 0,
         source: bytes = ZERO_MAC, timeout: float = 5.0) -> None:
    send_raw(sock_path, push_packet([record(rtype, payload, version, source)]), timeout)


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError("connection closed mid-packet")
        buf += chunk
    return bytes(buf)


def request(sock_path: str, rtype: int, timeout: float = 15.0):
    """Raw request; returns list of (source_mac_str, version, payload).

    Raises RuntimeError on status_error."""
    out = []
    with _connect(sock_path, timeout) as s:
        s.sendall(request_packet(rtype))
        while True:
            try:
                hdr = s.recv(4, socket.MSG_WAITALL)
            except socket.timeout:
                raise TimeoutError("no answer from daemon")
            if len(hdr) == 0:
                break
            if len(hdr) < 4:
                raise EOFError("short TLV header")
            ptype, _ver, length = struct.unpack("!BBH", hdr)
            body = _recv_exact(s, length)
            if ptype == PUSH_DATA:
                pos = 4
                while pos + 10 <= len(body):
                    src = body[pos:pos + 6]
                    t, v, ln = struct.unpack("!BBH", body[pos + 6:pos + 10])
                    payload = body[pos + 10:pos + 10 + ln]
                    pos += 10 + ln
                    if t == rtype:
                        out.append((":".join(f"{b:02x}" for b in src), v, payload))
            elif ptype == STATUS_TXEND:
                break
            elif ptype == STATUS_ERROR:
                code = struct.unpack("!H", body[2:4])[0] if len(body) >= 4 else -1
                raise RuntimeError(f"daemon answered status_error (seqno/code {code})")
    return out


def vis_v1_payload(mac: bytes, ifaces: list[bytes], entries: list[tuple[bytes, int, int]]) -> bytes:
    """batadv-vis data version 1 (record type 1):
    mac[6], iface_n u8, entries_n u8, iface_n * mac[6],
    entries_n * {mac[6], ifindex u8, qual u8}."""
    p = bytearray(mac) + bytes([len(ifaces), len(entries)])
    for m in ifaces:
        p += m
    for m, ifindex, qual in entries:
        p += m + bytes([ifindex, qual])
    return bytes(p)


def socket_path_ok(path: str) -> bool:
    return len(os.fsencode(path)) < 108
