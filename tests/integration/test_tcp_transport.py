"""The TCP server-to-server transport (`-t`) in real meshes.

Every test runs real daemons in network namespaces (lab/alfredlab, VDE
links, MTU 1280, `-p 1`).  Our daemons run with `-d`, whose log lines show
what went over TCP ("tcp N: push of ...", "connected to", "accepted",
"closed (...) ..., X bytes in, Y bytes out") and every fallback ("falling
back to UDP for ...", "treated as UDP-only ...").

LOSSY = 10 % loss + 1 % duplication + 20 ms delay on every receiver's
downlink (so a frame between two nodes crosses exactly one impaired hop and
a TCP round trip is >= 40 ms with ~19 % loss per round trip).

How time is measured: t0 is taken when the last record has been stored
(the last raw push / `alfred -s` returned).  Primaries are polled through a
raw unix-socket request (lab/alfredlab/protocol.py; answered from the
daemon's own store, nothing on the network, no process start), so polling
is cheap and its resolution is the poll interval + a few ms; that is what
POLL_SLACK covers.

1. test_300kb_two_primaries_lossy_tcp: two primaries of ours with -t, LOSSY.
   Once they have heard each other, 60 records x 5120 bytes (300 KiB) with
   60 distinct source MACs are pushed into primary A (a primary accepts
   foreign sources); B must hold all of them byte-exact within 30 s (the
   requirement).  Measured 1.4-2.8 s (one TCP connection, no fallback).
2. test_300kb_two_primaries_lossy_udp_recorded: the same without -t (ours)
   and with Debian's daemons, both meshes side by side, 30 s each; only
   the fraction B holds is recorded.  Measured 0 % for both: a sync
   datagram of ~64 KB is ~50 IPv6 fragments, 0.9^50 < 1 %.
3. test_secondaries_push_large_records_over_tcp: 1 primary + 3
   secondaries (ours, -t), LOSSY, each secondary sets 20000 bytes of type
   64; `alfred -r 64` on every secondary (forwarded over TCP) must return
   all three byte-exact within 3 periods + 2 TCP connect timeouts (9 s).
   Measured 1.4-5.7 s.
4. test_mixed_mesh_tcp_and_debian_udp: clean link, ours -t and Debian's
   alfred mixed (2 primaries, 2 secondaries), 2000-byte records; all 4 on
   all 4 nodes within 3 periods, and our primary's log shows the refused
   TCP connection to Debian's primary and the fallback to UDP.  Measured
   0.46-1.56 s.
5. test_three_primaries_thirty_secondaries_lossy[release|asan]: 3 primaries
   + 30 secondaries (ours, -t), 5 % loss, 1 % dup, 20 ms delay; all 33
   records on all 3 primaries within 3 sync periods (+ POLL_SLACK) after
   the last set; with the ASan+UBSan build (ALFRED_ASAN_BIN) no sanitizer
   report, also at exit (daemons stopped with SIGTERM, so LeakSanitizer
   runs) and exit status 0.  On failure the message explains the slowest
   records from the daemons' logs (when each was set, when its
   secondary's push reached a primary, the primaries' TCP syncs).
   Measured with the daemon of 2026-11-25: the bound is missed in most
   runs (2.9-6.9 s).  The path is: secondary push at its next tick (UDP,
   small), primary sync at *its* next tick (the primaries tick just before
   the pushes arrive, so ~1 period), TCP to the other primaries.  One lost
   push (78 % of runs with 30 secondaries) uses the third period; every
   sync opens a new TCP connection, ~11 % of handshakes lose a SYN/SYN-ACK
   at 5 % loss and cost 1 s (then Linux starts the connection with a 3 s
   RTO, so a lost data segment costs 3 s more), and while that push is
   still connecting the daemon skips the next syncs to that peer ("previous
   push ... still running, skipping"), the slow push carrying the older
   snapshot.
"""

from __future__ import annotations

import os
import random
import re
import threading
import time

import pytest

from helpers import PERIOD, ROOT, debian, our_flags, ours

from alfredlab import LabError, LinkParams, parse_records, protocol, wait_converged
from alfredlab.util import mac_str

LOSSY = LinkParams(loss=10, dup=1, delay_ms=20, mtu=1280)
LOSSY_MESH = LinkParams(loss=5, dup=1, delay_ms=20, mtu=1280)
POLL = 0.1          # poll interval (s)
POLL_SLACK = 0.25   # polling resolution + one raw request
TCP_CONNECT_TIMEOUT = 3.0   # README: "does not answer within 3 s" -> UDP
RTYPE = 64


def asan_bin() -> str:
    return os.environ.get("ALFRED_ASAN_BIN", os.path.join(ROOT, "build-asan", "alfred"))


def tcp_flags() -> list[str]:
    return ["-t", "-d"] + [f for f in our_flags() if f not in ("-t", "-d")]


def udp_flags() -> list[str]:
    """Ours without -t (ALFRED_FLAGS must not sneak it in)."""
    return ["-d"] + [f for f in our_flags() if f not in ("-t", "--tcp", "-d")]


# ---------------------------------------------------------------------------
# helpers

def fake_mac(lab, k: int) -> bytes:
    """Locally administered unicast MAC, distinct from every node's 02:a1:..."""
    return bytes([0x02, 0xA2, 0x00, 0x00, lab.run_byte, k])


def load_foreign_records(node, records: dict[str, bytes]) -> None:
    """Raw unix-socket pushes into a primary, one record per push (what
    upstream's unix socket accepts), with foreign source MACs."""
    for mac, payload in records.items():
        protocol.push(node.sock, RTYPE, payload, source=bytes.fromhex(mac.replace(":", "")))


def raw_view(node, rtype: int = RTYPE, timeout: float = 10.0) -> dict[str, bytes]:
    return {m: p for m, _v, p in protocol.request(node.sock, rtype, timeout=timeout)}


def matching(view: dict[str, bytes], expected: dict[str, bytes]) -> int:
    return sum(1 for m, p in expected.items() if view.get(m) == p)


def describe_view(view: dict[str, bytes], expected: dict[str, bytes]) -> str:
    missing = [m for m in expected if m not in view]
    wrong = [m for m in expected if m in view and view[m] != expected[m]]
    return (f"{matching(view, expected)}/{len(expected)} byte-exact; missing {len(missing)}"
            + (f" (e.g. {', '.join(missing[:3])})" if missing else "")
            + f"; different payload {len(wrong)}" + (f" (e.g. {wrong[0]}: {len(view[wrong[0]])} B)" if wrong else ""))


def poll_until(nodes, expected: dict[str, bytes], t0: float, deadline_s: float,
               interval: float = POLL, first_seen: dict | None = None
               ) -> tuple[dict[str, float | None], dict[str, dict[str, bytes]]]:
    """Poll every node's own store (raw request) until each holds all of
    `expected` byte-exact.  Returns ({node: seconds after t0 or None},
    {node: last view}).  first_seen, if given, is filled with
    {node: {mac: seconds after t0 when first seen byte-exact}}."""
    done: dict[str, float | None] = {nd.name: None for nd in nodes}
    views: dict[str, dict[str, bytes]] = {nd.name: {} for nd in nodes}
    seen = first_seen if first_seen is not None else {}
    end = t0 + deadline_s
    while True:
        for nd in nodes:
            if done[nd.name] is not None:
                continue
            try:
                v = raw_view(nd, timeout=max(1.0, end - time.monotonic() + 1))
            except (OSError, EOFError, RuntimeError, TimeoutError):
                nd.check()
                continue
            now = time.monotonic() - t0
            views[nd.name] = v
            mine = seen.setdefault(nd.name, {})
            for m, p in expected.items():
                if m not in mine and v.get(m) == p:
                    mine[m] = now
            if matching(v, expected) == len(expected):
                done[nd.name] = now
        if all(t is not None for t in done.values()) or time.monotonic() >= end:
            return done, views
        time.sleep(interval)


def daemon_log(nd) -> str:
    try:
        with open(nd.err_log, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


FALLBACK_RE = re.compile(r"falling back to UDP|treated as UDP-only")


def tcp_summary(nd) -> dict:
    log = daemon_log(nd)
    # Byte counts per connection: a connection's "closed" line, or on a
    # session, which stays open, its latest acknowledgement line, both
    # cumulative.
    per_conn: dict[str, tuple[int, int]] = {}
    for cid, i, o in re.findall(r"tcp (\d+): .*?(\d+) bytes in, (\d+) bytes out", log):
        pi, po = per_conn.get(cid, (0, 0))
        per_conn[cid] = (max(pi, int(i)), max(po, int(o)))
    return {
        "pushes": len(re.findall(r"tcp \d+: push of \d+ bytes", log)),
        "requests": len(re.findall(r"tcp \d+: request for type", log)),
        "connected": len(re.findall(r"tcp \d+: connected to", log)),
        "accepted": len(re.findall(r"tcp \d+: accepted", log)),
        "bytes_in": sum(i for i, _o in per_conn.values()),
        "bytes_out": sum(o for _i, o in per_conn.values()),
        "fallbacks": len(re.findall(r"falling back to UDP", log)),
        "fallback_lines": [ln for ln in log.splitlines() if FALLBACK_RE.search(ln)],
    }


def wait_log(nodes, pattern: str, timeout: float, count: int = 1) -> None:
    """Wait until every node's log has `count` distinct matches of `pattern`
    (e.g. "new primary (\\S+)")."""
    rx = re.compile(pattern)
    end = time.monotonic() + timeout
    while True:
        missing = [nd for nd in nodes if len(set(rx.findall(daemon_log(nd)))) < count]
        if not missing:
            return
        for nd in nodes:
            nd.check()
        if time.monotonic() > end:
            raise LabError(f"after {timeout:g}s no {count} x /{pattern}/ in the logs of "
                           + ", ".join(nd.name for nd in missing) + "\n"
                           + "\n".join(nd.logs(15) for nd in missing[:3]))
        time.sleep(0.05)


def start_mesh(lab, roles, period=PERIOD):
    """roles: [(binary, primary, flags)] per node; start all, wait for sockets."""
    for nd, (b, primary, fl) in zip(lab.nodes, roles):
        nd.label = f"{'ours' if b != debian() else 'debian'}/{'primary' if primary else 'secondary'}"
        nd.start(b, primary=primary, period=period, flags=fl, wait=False)
    for nd in lab.nodes:
        nd.wait_ready()


def fail(msg: str, lab=None, lines: int = 60):
    if lab is not None:
        msg += "\n---- daemon logs ----\n" + lab.daemon_logs(lines)
    pytest.fail(msg, pytrace=False)


# ---------------------------------------------------------------------------
# 1 + 2: 300 KB between two primaries over a lossy link

N_RECORDS = 60
RECORD_SIZE = 5120                      # 60 x 5120 = 307200 bytes = 300 KiB
TCP_300KB_LIMIT = 30.0                  # the requirement
UDP_OBSERVE = 30.0


def _two_primaries(make_lab, binary, flags):
    lab = make_lab(2, params=LOSSY)
    start_mesh(lab, [(binary, True, flags), (binary, True, flags)])
    # the two primaries know each other before the data is loaded, so the
    # time measured is the transfer, not the discovery (announcements are
    # sent once per period and lost like everything else)
    if binary == debian():
        time.sleep(3 * PERIOD)   # Debian's daemon does not log it; P(both lost 3x) ~ 1e-3
    else:
        wait_log(lab.nodes, r"new primary (\S+)", timeout=10)
    rnd = random.Random(300)
    expected = {mac_str(fake_mac(lab, k + 1)): rnd.randbytes(RECORD_SIZE) for k in range(N_RECORDS)}
    assert sum(len(p) for p in expected.values()) >= 300 * 1024
    return lab, expected


def _load_and_check_source(lab, expected):
    a = lab.node(1)
    load_foreign_records(a, expected)
    t0 = time.monotonic()
    va = raw_view(a)
    if matching(va, expected) != len(expected):
        fail(f"primary A did not store the loaded records: {describe_view(va, expected)}", lab)
    return t0


def test_300kb_two_primaries_lossy_tcp(make_lab, record_property):
    lab, expected = _two_primaries(make_lab, ours(), tcp_flags())
    a, b = lab.node(1), lab.node(2)
    t0 = _load_and_check_source(lab, expected)
    done, views = poll_until([b], expected, t0, TCP_300KB_LIMIT, interval=0.2)
    lab.check_daemons()
    took = done[b.name]
    sa, sb = tcp_summary(a), tcp_summary(b)
    record_property("tcp_300kb_seconds", None if took is None else round(took, 3))
    record_property("tcp_300kb_fallbacks", sa["fallbacks"] + sb["fallbacks"])
    print(f"\n300 KiB ({N_RECORDS} x {RECORD_SIZE} B) A->B over TCP, {LOSSY.describe()}: "
          + (f"{took:.3f} s" if took is not None else f"NOT within {TCP_300KB_LIMIT:g} s")
          + f"; A: {sa['pushes']} TCP pushes, {sa['connected']} connected, {sa['bytes_out']} bytes out, "
          f"{sa['fallbacks']} fallbacks; B: {sb['accepted']} accepted, {sb['bytes_in']} bytes in")
    if took is None:
        fail(f"B does not hold the 300 KiB within {TCP_300KB_LIMIT:g} s: "
             f"{describe_view(views[b.name], expected)}\nA fallbacks: {sa['fallback_lines']}", lab)
    # the same view through the command-line client, inside B's namespace
    got = b.read(RTYPE)
    if {m: got.get(m) for m in expected} != expected:
        fail(f"`alfred -r {RTYPE}` on B: {describe_view(got, expected)}", lab)
    # it really went over TCP (B logs the byte count when the connection
    # closes, which may come a moment after the data is in its store)
    total = sum(map(len, expected.values()))
    end = time.monotonic() + 3
    while not (sa["connected"] and sb["accepted"] and sb["bytes_in"] >= total) and time.monotonic() < end:
        time.sleep(0.1)
        sa, sb = tcp_summary(a), tcp_summary(b)
    if not (sa["connected"] and sb["accepted"] and sb["bytes_in"] >= total):
        fail(f"no TCP transfer of the data set in the logs: A {sa}, B {sb}", lab)


def test_300kb_two_primaries_lossy_udp_recorded(make_lab, record_property):
    """No convergence asserted: both meshes run side by side for UDP_OBSERVE
    seconds and the fraction of records B holds byte-exact is recorded."""
    meshes = {"ours_udp": _two_primaries(make_lab, ours(), udp_flags()),
              "debian_udp": _two_primaries(make_lab, debian(), [])}
    t0s = {name: _load_and_check_source(lab, exp) for name, (lab, exp) in meshes.items()}
    first_full: dict[str, float | None] = {name: None for name in meshes}
    fraction: dict[str, float] = {}
    end = max(t0s.values()) + UDP_OBSERVE
    while True:
        for name, (lab, exp) in meshes.items():
            lab.check_daemons()
            if time.monotonic() - t0s[name] > UDP_OBSERVE:
                continue
            v = raw_view(lab.node(2))
            fraction[name] = matching(v, exp) / len(exp)
            if fraction[name] == 1.0 and first_full[name] is None:
                first_full[name] = time.monotonic() - t0s[name]
        if time.monotonic() >= end:
            break
        time.sleep(1.0)
    for name, (lab, exp) in meshes.items():
        lab.check_daemons()   # the only assertion: the daemons survived
        record_property(f"{name}_fraction_after_{UDP_OBSERVE:g}s", round(fraction[name], 4))
        record_property(f"{name}_full_after_s",
                        None if first_full[name] is None else round(first_full[name], 3))
        print(f"\n{name}: B holds {fraction[name] * 100:.1f} % of the {N_RECORDS} records "
              f"({N_RECORDS * RECORD_SIZE // 1024} KiB) after {UDP_OBSERVE:g} s, {LOSSY.describe()}"
              + (f"; complete after {first_full[name]:.3f} s" if first_full[name] is not None else ""))


# ---------------------------------------------------------------------------
# 3: secondaries push large records over TCP

BIG = 20000
# Deadline, from the last `alfred -s`: a secondary pushes its local data at
# its next sync tick (<= 1 period); at 10 % loss the TCP handshake may need
# SYN/SYN-ACK retransmissions (Linux: 1 s, then 2 s later), bounded by the
# daemon's 3 s connect timeout, and 20 KB take a few round trips.  The
# `alfred -r` on a secondary is forwarded over a new TCP connection (again
# <= 3 s to connect) and 60 KB come back.  3 periods + 2 connect timeouts.
SECONDARY_DEADLINE = 3 * PERIOD + 2 * TCP_CONNECT_TIMEOUT


def _read_on(nd, expected, end):
    """`alfred -r 64` (our client, in nd's namespace) until it returns all of
    `expected` byte-exact or `end` passes.  -> (time, last view, #calls)."""
    calls = 0
    view: dict[str, bytes] = {}
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return None, view, calls
        try:
            cp = nd.client(["-r", str(RTYPE)], timeout=max(1.0, left))
            calls += 1
            if cp.returncode == 0:
                view = parse_records(cp.stdout)
                if all(view.get(m) == p for m, p in expected.items()):
                    return time.monotonic(), view, calls
        except LabError:
            calls += 1
        nd.check()
        time.sleep(0.2)


def test_secondaries_push_large_records_over_tcp(make_lab, record_property):
    lab = make_lab(4, params=LOSSY)
    start_mesh(lab, [(ours(), True, tcp_flags())] + [(ours(), False, tcp_flags())] * 3)
    prim, secs = lab.node(1), lab.nodes[1:]
    # every secondary has heard the primary's announcement (at 10 % loss a
    # fixed sleep would sometimes be too short)
    wait_log(secs, r"new primary (\S+)", timeout=10)
    rnd = random.Random(20000)
    expected = {nd.mac: rnd.randbytes(BIG) for nd in secs}
    for nd in secs:
        nd.set(RTYPE, expected[nd.mac])
    t0 = time.monotonic()
    end = t0 + SECONDARY_DEADLINE + POLL_SLACK
    # first the primary (its own store, no network involved) ...
    done, views = poll_until([prim], expected, t0, SECONDARY_DEADLINE + POLL_SLACK)
    t_primary = done[prim.name]
    # ... then `alfred -r 64` on every secondary, concurrently (forwarded)
    results: dict[str, tuple] = {}

    def reader(nd):
        results[nd.name] = _read_on(nd, expected, end)

    ths = [threading.Thread(target=reader, args=(nd,), daemon=True) for nd in secs]
    for th in ths:
        th.start()
    for th in ths:
        th.join(SECONDARY_DEADLINE + 30)
    lab.check_daemons()
    times = {name: (None if r[0] is None else r[0] - t0) for name, r in results.items()}
    summ = {nd.name: tcp_summary(nd) for nd in lab.nodes}
    fallbacks = sum(s["fallbacks"] for s in summ.values())
    record_property("secondaries_primary_has_all_s", None if t_primary is None else round(t_primary, 3))
    for name, t in times.items():
        record_property(f"secondaries_{name}_read_all_s", None if t is None else round(t, 3))
    record_property("secondaries_fallbacks", fallbacks)
    print(f"\n3 x {BIG} B from secondaries, {LOSSY.describe()}, deadline {SECONDARY_DEADLINE:g} s: primary "
          + (f"{t_primary:.3f} s" if t_primary is not None else "NOT complete")
          + "; alfred -r on " + ", ".join(
              f"{n}: {'-' if t is None else f'{t:.3f} s'} ({results[n][2]} calls)" for n, t in times.items())
          + "\n" + "\n".join(f"  {n}: {s['pushes']} pushes, {s['requests']} requests, {s['connected']} "
                             f"connected, {s['accepted']} accepted, {s['bytes_in']} B in, {s['bytes_out']} B out, "
                             f"{s['fallbacks']} fallbacks" for n, s in summ.items()))
    bad = [n for n, t in times.items() if t is None]
    if t_primary is None or bad:
        fb = "\n".join(f"  {n}: {ln}" for n, s in summ.items() for ln in s["fallback_lines"])
        fail(f"not within {SECONDARY_DEADLINE:g} s (+{POLL_SLACK}): primary: "
             f"{describe_view(views[prim.name], expected)}; "
             + "; ".join(f"{n}: {describe_view(results[n][1], expected)}" for n in bad)
             + (f"\nfallbacks:\n{fb}" if fb else ""), lab)
    # TCP was used: each secondary pushed its record over a connection and
    # forwarded the client request over one; the primary accepted them.
    # (Byte counts are logged when a connection closes, a moment after the
    # data has been delivered.)
    def tcp_ok(sm):
        return all(sm[nd.name]["pushes"] and sm[nd.name]["connected"] and sm[nd.name]["bytes_out"] >= BIG
                   and sm[nd.name]["requests"] and sm[nd.name]["bytes_in"] >= len(expected) * BIG
                   for nd in secs) and sm[prim.name]["accepted"] >= len(secs) \
            and sm[prim.name]["bytes_in"] >= len(secs) * BIG
    log_end = time.monotonic() + 3
    while not tcp_ok(summ) and time.monotonic() < log_end:
        time.sleep(0.1)
        summ = {nd.name: tcp_summary(nd) for nd in lab.nodes}
    for nd in secs:
        s = summ[nd.name]
        if not (s["pushes"] and s["connected"] and s["bytes_out"] >= BIG and s["requests"]
                and s["bytes_in"] >= len(expected) * BIG):
            fail(f"{nd.name}: the logs show no TCP push of its {BIG} B record or no forwarded request "
                 f"answered over TCP: {s}", lab)
    if summ[prim.name]["accepted"] < len(secs) or summ[prim.name]["bytes_in"] < len(secs) * BIG:
        fail(f"primary accepted too little over TCP: {summ[prim.name]}", lab)


# ---------------------------------------------------------------------------
# 4: mixed mesh, ours with -t and Debian's UDP-only alfred

MIXED_SIZE = 2000
# Clean link.  Debian's daemon does not listen on TCP 16962, so our
# connections are refused at once (RST) and the same transaction goes by
# UDP in the same period: the mixed-mesh bound of 3 periods holds.
MIXED_LIMIT = 3 * PERIOD


def test_mixed_mesh_tcp_and_debian_udp(make_lab, record_property):
    lab = make_lab(4, params=LinkParams())
    roles = [(ours(), True, tcp_flags()), (debian(), True, []),
             (ours(), False, tcp_flags()), (debian(), False, [])]
    start_mesh(lab, roles)
    n1, n2, n3, n4 = lab.nodes
    wait_log([n1], r"new primary (\S+)", timeout=10)   # n1 heard n2
    wait_log([n3], r"new primary (\S+)", timeout=10, count=2)
    time.sleep(1.5 * PERIOD)   # Debian's secondary has heard a primary too
    lab.check_daemons()
    rnd = random.Random(1232)
    expected = {nd.mac: rnd.randbytes(MIXED_SIZE) for nd in lab.nodes}
    for nd in lab.nodes:
        nd.set(RTYPE, expected[nd.mac])   # each node with its own client
    t0 = time.monotonic()
    # every node through its own `alfred -r` (the secondaries' reads are
    # forwarded to their primary: over TCP by ours, falling back for Debian)
    res = wait_converged(lab.nodes, {RTYPE: expected}, t0=t0, deadline_s=max(10.0, 4 * MIXED_LIMIT),
                         interval=POLL)
    lab.check_daemons()
    print(f"\n{MIXED_SIZE} B records, ours -t + Debian:\n{res.table()}")
    for r in res.nodes:
        record_property(f"mixed_{r.node}_{r.label.replace('/', '_')}_s",
                        None if r.converged_s is None else round(r.converged_s, 3))
    summ = {nd.name: tcp_summary(nd) for nd in (n1, n3)}
    for n, s in summ.items():
        print(f"  {n}: {s['pushes']} TCP pushes, {s['requests']} TCP requests, {s['connected']} connected, "
              f"{s['accepted']} accepted, {s['fallbacks']} fallbacks\n    "
              + "\n    ".join(s["fallback_lines"][:4]))
    if not res.all_converged or res.max_s > MIXED_LIMIT + POLL_SLACK:
        views = "\n".join(f"  {r.node} ({r.label}): {describe_view(r.last_view.get(RTYPE, {}), expected)}"
                          + (f"; {r.errors[-1]}" if r.errors else "") for r in res.nodes)
        fail(f"not every node had all 4 records within {MIXED_LIMIT:g} s (+{POLL_SLACK}):\n"
             f"{res.table()}\n{views}", lab)
    # our primary's sync to Debian's primary is > 1232 bytes: it tried TCP,
    # was refused and fell back to UDP, remembering n2 as UDP-only
    n1_fb = [ln for ln in summ[n1.name]["fallback_lines"] if n2.ll6 in ln]
    if not any("treated as UDP-only" in ln for ln in n1_fb):
        fail(f"n1 (ours, primary, -t) never fell back to UDP for Debian's primary {n2.ll6}:\n"
             + "\n".join(summ[n1.name]["fallback_lines"]), lab)


# ---------------------------------------------------------------------------
# 5: 3 primaries + 30 secondaries, lossy, release and ASan+UBSan

MESH_RECORD = 200   # a primary's first-hand data of ~10 nodes > 1232 B -> TCP between primaries
# From the last set: a secondary pushes at its next sync tick (<= 1 period),
# its primary syncs to the other primaries at its next tick (<= 1 period),
# one period is left for a lost datagram / a retransmitted TCP handshake.
MESH_LIMIT = 3 * PERIOD
SANITIZER_RE = re.compile(r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|"
                          r"SUMMARY: (Address|Undefined|Leak)Sanitizer")
LOG_TS = re.compile(r"^\[(\d+\.\d+)\] (.*)$")


def _variant(kind: str) -> tuple[str, int]:
    """-> (binary, number of secondaries)"""
    if kind == "release":
        return ours(), 30
    b = asan_bin()
    if not os.path.isfile(b):
        pytest.fail(f"ALFRED_ASAN_BIN {b} not found -- build it with `scripts/build.sh asan`", pytrace=False)
    with open(b, "rb") as f:
        if b"__asan_init" not in f.read():
            pytest.fail(f"ALFRED_ASAN_BIN {b} is not built with AddressSanitizer", pytrace=False)
    return b, 30


def _log_events(nd, t0: float, pattern: str) -> list[tuple[float, str]]:
    """(seconds after t0, message) of nd's log lines matching pattern; the
    daemon stamps its lines with CLOCK_MONOTONIC, time.monotonic() here."""
    rx = re.compile(pattern)
    out = []
    for ln in daemon_log(nd).splitlines():
        m = LOG_TS.match(ln)
        if m and rx.search(m.group(2)):
            out.append((float(m.group(1)) - t0, m.group(2)))
    return out


def _mesh_diagnosis(lab, prims, t0, set_at, first_seen, worst_n=4) -> str:
    """Why the slowest records were slow: when each was set, when its
    owner's push first reached a primary, when every primary had it; and
    the primaries' TCP syncs (start, connect, close, skips)."""
    by_mac = {nd.mac: nd for nd in lab.nodes}
    last = {}
    for p in prims:
        for mac, t in first_seen.get(p.name, {}).items():
            last[mac] = max(last.get(mac, -1e9), t)
    slow = sorted(by_mac, key=lambda m: -last.get(m, 1e9))[:worst_n]
    lines = ["slowest records (times relative to the last set, t0):"]
    for mac in slow:
        nd = by_mac[mac]
        arrivals = []
        if not nd.primary:
            for p in prims:
                ev = [t for t, _ in _log_events(p, t0, rf"transaction \d+ from {re.escape(mac)} .*complete")
                      if t >= set_at[mac] - t0]
                if ev:
                    arrivals.append(f"{p.name} {ev[0]:+.3f}")
        seen = ", ".join(f"{p.name} {first_seen.get(p.name, {}).get(mac, float('nan')):+.3f}" for p in prims)
        lines.append(f"  {nd.name} ({nd.label}) set {set_at[mac] - t0:+.3f}; its push reached "
                     f"{', '.join(arrivals) or '-'}; on primaries: {seen}")
    for p in prims:
        ev = _log_events(p, t0, r"tcp \d+: (push of|connected to|closed)|still running, skipping")
        lines.append(f"  {p.name} TCP: " + "; ".join(f"{t:+.3f} {m[:70]}" for t, m in ev if t > -1.5))
    return "\n".join(lines)


@pytest.mark.parametrize("kind", ["release", "asan"])
def test_three_primaries_thirty_secondaries_lossy(make_lab, record_property, monkeypatch, kind):
    binary, n_sec = _variant(kind)
    if kind == "asan":
        # keep going after a UBSan report (it is found in the log at the
        # end); ASan itself stops at its first error; leaks reported at exit
        monkeypatch.setenv("ASAN_OPTIONS", os.environ.get("ASAN_OPTIONS", "detect_leaks=1"))
        monkeypatch.setenv("UBSAN_OPTIONS", os.environ.get("UBSAN_OPTIONS", "print_stacktrace=1"))
    n = 3 + n_sec
    lab = make_lab(n, params=LOSSY_MESH)
    start_mesh(lab, [(binary, i < 3, tcp_flags()) for i in range(n)])
    prims, secs = lab.nodes[:3], lab.nodes[3:]
    # every primary knows the two others, every secondary knows a primary
    wait_log(prims, r"new primary (\S+)", timeout=15, count=2)
    wait_log(secs, r"new primary (\S+)", timeout=15)
    # ... and every secondary's session to its primary (n1, the lowest MAC
    # with -b none) is up. The bound is about delivery: a handshake at
    # start-up that loses two SYNs at 5 % loss (1 % of them; in a quarter of
    # the 30-secondary meshes) is connected only by Linux's third SYN, 3 s
    # later, which is start-up, not the change's delivery.
    wait_log(secs, r"(?s)tcp (\d+): connected to " + re.escape(prims[0].ll6) + r"%.*?tcp \1: session up",
             timeout=15)
    expected = {nd.mac: (f"{nd.name} {nd.label} ".encode() * 20)[:MESH_RECORD] for nd in lab.nodes}
    set_at = {}
    t_first = time.monotonic()
    for nd in lab.nodes:
        nd.set(RTYPE, expected[nd.mac])
        set_at[nd.mac] = time.monotonic()
    t0 = time.monotonic()
    first_seen: dict = {}
    done, views = poll_until(prims, expected, t0, max(20.0, 6 * MESH_LIMIT), first_seen=first_seen)
    problems = []
    try:
        lab.check_daemons()
    except LabError as e:
        problems.append(str(e))
    summ = {nd.name: tcp_summary(nd) for nd in lab.nodes}
    worst = max((t for t in done.values() if t is not None), default=None)
    record_property(f"mesh33_{kind}_sets_s", round(t0 - t_first, 3))
    for name, t in done.items():
        record_property(f"mesh33_{kind}_{name}_s", None if t is None else round(t, 3))
    tcp_prim = sum(summ[p.name]["pushes"] for p in prims)
    fallbacks = sum(s["fallbacks"] for s in summ.values())
    record_property(f"mesh33_{kind}_fallbacks", fallbacks)
    diagnosis = _mesh_diagnosis(lab, prims, t0, set_at, first_seen)
    print(f"\n{kind}: 3 primaries + {n_sec} secondaries, {LOSSY_MESH.describe()}; {n} sets took "
          f"{t0 - t_first:.2f} s; all records on the primaries after the last set: "
          + ", ".join(f"{k}: {'-' if t is None else f'{t:.3f} s'}" for k, t in done.items())
          + f"; TCP pushes between primaries: {tcp_prim}, fallbacks: {fallbacks}\n{diagnosis}")
    if worst is None or any(t is None for t in done.values()) or worst > MESH_LIMIT + POLL_SLACK:
        detail = "; ".join(f"{p.name}: {describe_view(views[p.name], expected)}" for p in prims)
        fb = "\n".join(f"  {k}: {ln}" for k, s in summ.items() for ln in s["fallback_lines"][:3])
        problems.append(f"not every record on every primary within {MESH_LIMIT:g} s (+{POLL_SLACK}) after "
                        f"the last set: " + ", ".join(f"{k}: {'-' if t is None else f'{t:.3f} s'}"
                                                      for k, t in done.items())
                        + f"\n{detail}\n{diagnosis}" + (f"\nfallbacks:\n{fb}" if fb else ""))
    if not tcp_prim:
        problems.append("the primaries never synced over TCP (first-hand data should exceed 1232 B)")
    # stop everything with SIGTERM (clean exit -> LeakSanitizer runs) and
    # look at what the daemons said
    codes = {nd.name: nd.stop(timeout=15 if kind == "asan" else 3) for nd in lab.nodes}
    reports = {}
    for nd in lab.nodes:
        log = daemon_log(nd)
        hits = [ln for ln in log.splitlines() if SANITIZER_RE.search(ln)]
        if hits:
            at = log.find(hits[0])
            reports[nd.name] = log[max(0, at - 300):at + 4000]
    bad_exit = {k: c for k, c in codes.items() if c != 0}
    record_property(f"mesh33_{kind}_sanitizer_reports", len(reports))
    if reports or bad_exit:
        problems.append(f"exit codes after SIGTERM: {bad_exit or 'all 0'}; sanitizer reports from "
                        f"{sorted(reports) or 'nobody'}:\n"
                        + "\n".join(f"--- {k}:\n{v}" for k, v in list(reports.items())[:3]))
    if problems:
        fail(f"{kind}: " + "\n".join(problems), lab, 30)


# 6: issue 8's scenario at the default period: change-triggered delivery

DEFAULT_PERIOD = 10           # alfred's default -p
CHANGE_LIMIT = 5.0            # well before a period boundary could carry it
CHANGE_RECORD = 800
READ_LIMIT = 12.0             # all 30 secondaries' -r complete, read at once


def test_changes_reach_every_node_before_a_period_at_default_period(make_lab, record_property):
    """3 primaries + 30 secondaries of ours (-t), 5 % loss, 1 % dup, 20 ms
    delay, -p 10, one 800 B record set on every node: every primary holds
    all 33 records, and `alfred -r` on every secondary returns all 33,
    within 5 s of the last set.  Only change-triggered delivery meets that:
    a secondary's set goes to its primary within 100 ms and the primary
    forwards it to the others within 100 ms, both over TCP whatever the
    size, so a lost frame is retransmitted, not left for the next period.
    Before (period-bound, small pushes as datagrams): median 28 s, max 30 s."""
    n = 33
    lab = make_lab(n, params=LOSSY_MESH)
    start_mesh(lab, [(ours(), i < 3, tcp_flags()) for i in range(n)], period=DEFAULT_PERIOD)
    prims, secs = lab.nodes[:3], lab.nodes[3:]
    wait_log(prims, r"new primary (\S+)", timeout=3 * DEFAULT_PERIOD, count=2)
    wait_log(secs, r"new primary (\S+)", timeout=3 * DEFAULT_PERIOD)
    expected = {nd.mac: (f"{nd.name} {nd.label} ".encode() * 60)[:CHANGE_RECORD] for nd in lab.nodes}
    set_at = {}
    for nd in lab.nodes:
        nd.set(RTYPE, expected[nd.mac])
        set_at[nd.mac] = time.monotonic()
    t0 = time.monotonic()
    first_seen: dict = {}
    done, views = poll_until(prims, expected, t0, 3 * DEFAULT_PERIOD, first_seen=first_seen)
    # what a client on each secondary reads (forwarded to its primary), all
    # secondaries at once
    read_at = {}

    def read_one(nd):
        try:
            got = nd.read(RTYPE)
        except LabError:
            got = {}
        ok = all(got.get(m) == p for m, p in expected.items())
        read_at[nd.name] = (time.monotonic() - t0) if ok else None

    readers = [threading.Thread(target=read_one, args=(nd,)) for nd in secs]
    for th in readers:
        th.start()
    for th in readers:
        th.join(60)
    worst_prim = max((t for t in done.values() if t is not None), default=None)
    worst_read = max((t for t in read_at.values() if t is not None), default=None)
    record_property("change33_primaries_worst_s", None if worst_prim is None else round(worst_prim, 3))
    record_property("change33_secondary_reads_worst_s", None if worst_read is None else round(worst_read, 3))
    diagnosis = _mesh_diagnosis(lab, prims, t0, set_at, first_seen)
    print(f"\n3 + 30 at -p {DEFAULT_PERIOD}, {LOSSY_MESH.describe()}: all records on the primaries "
          + ", ".join(f"{k}: {'-' if t is None else f'{t:.3f} s'}" for k, t in done.items())
          + f"; every secondary's -r complete by {worst_read if worst_read is None else round(worst_read, 3)} s"
          + f"\n{diagnosis}")
    problems = []
    try:
        lab.check_daemons()
    except LabError as e:
        problems.append(str(e))
    if worst_prim is None or any(t is None for t in done.values()) or worst_prim > CHANGE_LIMIT:
        detail = "; ".join(f"{p.name}: {describe_view(views[p.name], expected)}" for p in prims)
        problems.append(f"not every record on every primary within {CHANGE_LIMIT:g} s: "
                        + ", ".join(f"{k}: {'-' if t is None else f'{t:.3f} s'}" for k, t in done.items())
                        + f"\n{detail}\n{diagnosis}")
    # The reads start once the primaries hold everything; each is a request
    # on a new TCP connection over the lossy link (a lost SYN costs 1 s, two
    # 3 s), so their bound is about completeness, not delivery time.
    late = {k: t for k, t in read_at.items() if t is None or t > READ_LIMIT}
    if late:
        problems.append(f"secondaries whose -r lacked records or came late (bound {READ_LIMIT:g} s): {late}")
    if problems:
        fail("\n".join(problems), lab, 30)
