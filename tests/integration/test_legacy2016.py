"""Our daemon (-t) with peers built from the 2016 TCP proposal.

The 2016 RFC v2 patch ("alfred: implement TCP support for server-to-server
communication") frames TCP as ordinary alfred packets back to back, one
transaction per connection: a receiver applies push data at the txend and
closes, closes on any packet type it does not know, never writes on a push
connection; a requester reads the answer up to its txend and closes; an
answerer writes the whole answer and closes; a sender writes everything and
closes at once.  tests/integration/legacy2016_peer.py is a test peer that
does exactly that (its docstring maps each behaviour to the patch's
function), run in a lab namespace in place of a daemon; it records every
connection (packets in order, who closed, why, bytes left unread at its
close) so these tests can assert the framing, not only the data.

Every test: 2 nodes on a clean VDE link (MTU 1280), ours with `-t -d -p 1`,
the peer with a 1 s period (the patch's is a fixed 10 s) and `-t` unless
said otherwise; records of 3000 bytes and more, so that both sides choose
TCP (the patch: > 1232 bytes; ours: syncs > 1232 bytes and every change).

1. test_ours_pushes_to_2016_primary[ours_primary | ours_secondary |
   ours_primary_peer_without_t]: what ours sets reaches the peer's store
   (first-hand: sent by its source), a change too, on connections that
   each carry one transaction (push data, txend with the right count,
   nothing after it: the peer closed on the txend with 0 bytes unread);
   no UDP fallback.  The peer without -t still listens (the patch opens the
   TCP socket whatever -t says) and takes ours' TCP.
2. test_2016_pushes_to_ours[peer_primary | peer_secondary]: the peer's
   sync_data / push_local_data reaches our store, a change too, each on a
   connection the peer opened, wrote whole and closed itself; ours sent
   nothing back on them.
3. test_2016_request_answered_by_ours: `alfred -r` on the 2016 secondary
   goes to our primary on a new connection; ours answers on it (80 KB,
   byte-exact), the requester reads up to the txend and closes; a second
   request uses a second connection.
4. test_ours_forwards_request_to_2016_primary: `alfred -r` on our
   secondary is forwarded over TCP to the 2016 primary, which answers and
   closes; ours returns the peer's record.
5. test_session_probe_tolerated_by_2016_peer: the probe our daemon sends
   first on a new outbound connection (a session hello, type 0xc8, unknown
   to the 2016 code) is answered by a plain close, and afterwards
   everything still gets through: ours' push and a forwarded request, each
   connection either one probe with nothing behind it or one transaction,
   no probe again once data went through, no fallback to UDP.  Meaningful
   once ours probes; the delivery it asserts holds either way.
6. test_2016_primary_answers_udp_request_over_tcp: ours without -t asks by
   UDP; the 2016 primary (-t) answers the big answer on a connection of its
   own to ours (the patch's push_data for a UDP request); ours' client gets it.

Measured on 2026-12-01 (2 cores): the module takes 21-25 s, with our
daemon before the sessions (8b9cbef: no probe) and with them (b79bf12: one
probe per peer, then one connection per transaction); deliveries 0.1-0.2 s
from ours, ~1 s (the peer's period) from the peer.

The peer exits (status 139) where the real 2016 daemon segfaults (a
request it rejects, on TCP), so every test also shows that ours never sends
one: its last report() would fail.
"""

from __future__ import annotations

import random
import re
import time

import pytest

from helpers import PERIOD, our_flags, ours

from alfredlab import LinkParams, protocol
from legacy2016_peer import (PUSH_DATA, REQUEST, STATUS_TXEND, Legacy2016Peer, PeerError, probe_once,
                             tlv)

RTYPE = 64
BIG = 3000                 # > 1232: TCP on both sides
PEER_INTERVAL = 1.0        # the peer's period (ALFRED_INTERVAL is 10 s in the patch)
DELIVERY_LIMIT = 6.0       # a few periods of either side
SESSION_HELLO = 0xC8       # src/wire/session_frames.hpp: SessionType::Hello
HELLO = tlv(SESSION_HELLO, 8) + b"AlfS" + bytes([1, 0, 0, 10])


def tcp_flags() -> list[str]:
    return ["-t", "-d"] + [f for f in our_flags() if f not in ("-t", "-d")]


@pytest.fixture
def legacy(make_lab):
    """legacy(node, primary=..., tcp=True) -> a started Legacy2016Peer;
    stopped before the lab goes."""
    peers: list[Legacy2016Peer] = []

    def start(node, **kw) -> Legacy2016Peer:
        kw.setdefault("interval", PEER_INTERVAL)
        p = Legacy2016Peer(node, **kw)
        peers.append(p)
        return p.start()

    yield start
    for p in peers:
        p.stop()


# ---------------------------------------------------------------------------
# helpers

def daemon_log(nd) -> str:
    try:
        with open(nd.err_log, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def wait_log(nd, pattern: str, timeout: float) -> None:
    rx = re.compile(pattern)
    end = time.monotonic() + timeout
    while not rx.search(daemon_log(nd)):
        nd.check()
        if time.monotonic() > end:
            pytest.fail(f"{nd.name}: no /{pattern}/ in its log after {timeout:g}s\n{nd.logs(30)}",
                        pytrace=False)
        time.sleep(0.05)


def fallbacks(nd, addr: str) -> list[str]:
    return [ln for ln in daemon_log(nd).splitlines()
            if addr in ln and re.search(r"falling back to UDP|treated as UDP-only", ln)]


def our_view(nd, rtype: int = RTYPE) -> dict[str, bytes]:
    return {m: p for m, _v, p in protocol.request(nd.sock, rtype, timeout=10)}


def wait_ours_has(nd, expected: dict[str, bytes], timeout: float, what: str) -> float:
    t0 = time.monotonic()
    while True:
        v = our_view(nd)
        if all(v.get(m) == p for m, p in expected.items()):
            return time.monotonic() - t0
        nd.check()
        if time.monotonic() - t0 > timeout:
            pytest.fail(f"{what}: not in {nd.name}'s store within {timeout:g}s; it holds "
                        + ", ".join(f"{m} ({len(p)} B)" for m, p in v.items())
                        + f"\n{nd.logs(40)}", pytrace=False)
        time.sleep(0.1)


def wait_peer_has(peer: Legacy2016Peer, mac: str, payload: bytes, timeout: float, what: str) -> tuple[float, dict]:
    t0 = time.monotonic()

    def ok(rep):
        return any(e["source"] == mac and e["type"] == RTYPE and bytes.fromhex(e["data"]) == payload
                   for e in rep["store"])
    try:
        rep = peer.wait_until(ok, timeout, what)
    except PeerError as e:
        rep = peer.report()
        pytest.fail(f"{e}; the peer holds "
                    + ", ".join(f"{x['source']} ({len(x['data']) // 2} B)" for x in rep["store"])
                    + f"\nits connections:\n{show_conns(rep)}\n{peer.node.lab.daemon_logs(40)}", pytrace=False)
    return time.monotonic() - t0, rep


def closed_conns(rep: dict, peer_addr: str, direction: str) -> list[dict]:
    return [c for c in rep["connections"]
            if c.get("id") is not None and c["dir"] == direction and c["peer"] == peer_addr
            and c["id"] not in rep["open"]]


def show_conns(rep: dict, limit: int = 25) -> str:
    out = []
    for c in rep["connections"][-limit:]:
        pk = " ".join(f"{p['name']}" + (f"#{p['tx_id']}/{p['seqno']}" if "seqno" in p else "")
                      for p in c.get("packets", []))
        out.append(f"  conn {c.get('id')} {c['dir']} {c.get('purpose')} {c['peer']}: [{pk}] "
                   f"in {c.get('bytes_in')} out {c.get('bytes_out')}/{c.get('to_send')} "
                   f"end={c.get('end')} closed_by={c.get('closed_by')} unread={c.get('unread_at_close')}"
                   + (f" stopped_reading={c['stopped_reading']}" if c.get("stopped_reading") else ""))
    return "\n".join(out)


def is_probe(c: dict) -> bool:
    return bool(c["packets"]) and c["packets"][0]["type"] not in (PUSH_DATA, REQUEST, STATUS_TXEND)


def check_inbound_framing(conns: list[dict]) -> tuple[list[dict], list[dict], list[str]]:
    """Connections ours opened to the peer, as the peer read them.  Each must
    be a probe (one packet of a type the 2016 code does not know, closed on
    it with nothing behind it) or one transaction (push data of one tx id,
    then the txend counting them, closed on it with nothing behind it).
    Returns (probes, transactions, problems)."""
    probes, txs, problems = [], [], []
    for c in conns:
        pk = c["packets"]
        if not pk:
            if c["end"] not in ("eof",):
                problems.append(f"conn {c['id']}: nothing read, ended {c['end']}")
            continue
        if is_probe(c):
            probes.append(c)
            if len(pk) != 1 or not c["end"].startswith("unknown type"):
                problems.append(f"conn {c['id']}: a probe, but {len(pk)} packets read, ended {c['end']}")
            if c["unread_at_close"]:
                problems.append(f"conn {c['id']}: {c['unread_at_close']} bytes sent behind the probe, "
                                "before the peer answered (a 2016 peer resets on them)")
            continue
        if pk[0]["type"] != PUSH_DATA:
            continue          # a request: see the request tests
        txs.append(c)
        last = pk[-1]
        if last["type"] != STATUS_TXEND or c["end"] != "txend":
            problems.append(f"conn {c['id']}: ended {c['end']} before a txend")
            continue
        pushes = pk[:-1]
        ids = {p["tx_id"] for p in pk}
        if any(p["type"] != PUSH_DATA for p in pushes) or len(ids) != 1:
            problems.append(f"conn {c['id']}: more than one transaction or stray packets: "
                            + " ".join(p["name"] for p in pk))
        if last["seqno"] != len(pushes):
            problems.append(f"conn {c['id']}: txend counts {last['seqno']} packets, {len(pushes)} sent")
        if c["unread_at_close"]:
            problems.append(f"conn {c['id']}: {c['unread_at_close']} bytes after the txend (a second "
                            "transaction on a connection the 2016 peer closes after one; it resets)")
    return probes, txs, problems


def held_open(rep: dict, limit: float = 2.0) -> list[str]:
    """The 2016 code sends nothing at all (not even by UDP) to an address it
    has any connection with (open_alfred_stream).  A transaction of the peer
    skipped for a connection of ours that lasts milliseconds is that design's
    bad luck; one skipped for a connection ours held open would starve the
    2016 peer's sends for as long as ours holds it."""
    by_id = {c.get("id"): c for c in rep["connections"]}
    out = []
    for sk in rep["skipped"]:
        c = by_id.get(sk["open_conn"])
        if c is None or c["t_close"] is None or c["t_close"] - c["t_open"] > limit:
            out.append(f"{sk['purpose']} of {sk['bytes']} B skipped for conn {sk['open_conn']}, "
                       + ("still open" if c is None or c["t_close"] is None
                          else f"open {c['t_close'] - c['t_open']:.2f} s"))
    return out


def start_ours(nd, primary: bool):
    nd.label = f"ours/{'primary' if primary else 'secondary'}"
    nd.start(ours(), primary=primary, period=PERIOD, flags=tcp_flags())


# ---------------------------------------------------------------------------
# 1: ours -> 2016 peer (primary)

@pytest.mark.parametrize("ours_primary,peer_tcp", [(True, True), (False, True), (True, False)],
                         ids=["ours_primary", "ours_secondary", "ours_primary_peer_without_t"])
def test_ours_pushes_to_2016_primary(make_lab, legacy, ours_primary, peer_tcp):
    lab = make_lab(2, params=LinkParams())
    n1, n2 = lab.nodes
    start_ours(n1, ours_primary)
    peer = legacy(n2, primary=True, tcp=peer_tcp)
    wait_log(n1, r"new primary", timeout=5)          # heard the peer's announcement
    first = random.Random(1).randbytes(BIG)
    second = random.Random(2).randbytes(BIG + 500)
    n1.set(RTYPE, first)
    took1, _ = wait_peer_has(peer, n1.mac, first, DELIVERY_LIMIT, "ours' record on the 2016 peer")
    n1.set(RTYPE, second)
    took2, rep = wait_peer_has(peer, n1.mac, second, DELIVERY_LIMIT, "ours' changed record on the 2016 peer")
    time.sleep(0.3)       # let connections in flight end
    rep = peer.report()
    lab.check_daemons()
    entry = next(e for e in rep["store"] if e["source"] == n1.mac and e["type"] == RTYPE)
    conns = closed_conns(rep, n1.ll6, "in")
    probes, txs, problems = check_inbound_framing(conns)
    print(f"\nours ({'primary' if ours_primary else 'secondary'}) -> 2016 primary"
          f"{'' if peer_tcp else ' without -t'}: first record after {took1:.2f} s, change after "
          f"{took2:.2f} s; {len(conns)} connections: {len(txs)} transactions, {len(probes)} probes\n"
          + show_conns(rep))
    assert entry["data_source"] == "first_hand", entry["data_source"]
    assert not problems, "\n".join(problems) + "\n" + show_conns(rep)
    assert len(txs) >= 2, f"the two records did not come on connections of their own:\n{show_conns(rep)}"
    assert not held_open(rep), held_open(rep)
    assert not fallbacks(n1, n2.ll6), fallbacks(n1, n2.ll6)


# ---------------------------------------------------------------------------
# 2: 2016 peer -> ours (primary)

@pytest.mark.parametrize("peer_primary", [True, False], ids=["peer_primary", "peer_secondary"])
def test_2016_pushes_to_ours(make_lab, legacy, peer_primary):
    lab = make_lab(2, params=LinkParams())
    n1, n2 = lab.nodes
    start_ours(n1, True)
    peer = legacy(n2, primary=peer_primary)
    first = random.Random(3).randbytes(BIG)
    second = random.Random(4).randbytes(2 * BIG)
    peer.set(RTYPE, first)
    took1 = wait_ours_has(n1, {n2.mac: first}, DELIVERY_LIMIT, "the 2016 peer's record")
    peer.set(RTYPE, second)
    took2 = wait_ours_has(n1, {n2.mac: second}, DELIVERY_LIMIT, "the 2016 peer's changed record")
    time.sleep(0.3)
    rep = peer.report()
    lab.check_daemons()
    out = [c for c in closed_conns(rep, n1.ll6, "out") if c["purpose"] in ("sync", "push_local")]
    print(f"\n2016 {'primary' if peer_primary else 'secondary'} -> ours (primary): first after {took1:.2f} s, "
          f"change after {took2:.2f} s; {len(out)} push connections\n" + show_conns(rep))
    assert len(out) >= 2, f"the peer did not push over TCP:\n{show_conns(rep)}"
    for c in out:
        # one transaction, written whole, then the peer closed (first)
        assert c["bytes_out"] == c["to_send"] and c["end"] == "all written", show_conns(rep)
        assert c["closed_by"] == "us", f"conn {c['id']}: ours closed before the 2016 sender\n{show_conns(rep)}"
        # anything ours wrote back would be parsed by the 2016 sender (a
        # request would even replace the rest of its push)
        assert c["bytes_in"] == 0 and not c["packets"], \
            f"conn {c['id']}: ours sent {c['bytes_in']} bytes back on the 2016 peer's push\n{show_conns(rep)}"
    assert not held_open(rep), held_open(rep)
    log = daemon_log(n1)
    assert re.search(rf"transaction \d+ from {re.escape(n2.mac)} .*complete", log), \
        "ours logged no complete transaction from the peer"


# ---------------------------------------------------------------------------
# 3: the 2016 secondary's request, answered by ours

def test_2016_request_answered_by_ours(make_lab, legacy):
    lab = make_lab(2, params=LinkParams())
    n1, n2 = lab.nodes
    start_ours(n1, True)
    rnd = random.Random(5)
    expected = {n1.mac: rnd.randbytes(BIG)}
    n1.set(RTYPE, expected[n1.mac])
    for k in range(4):     # 80 KB: more than one 64 KB push packet
        src = bytes([0x02, 0xA3, 0, 0, lab.run_byte, k + 1])
        expected[":".join(f"{b:02x}" for b in src)] = payload = rnd.randbytes(20000)
        protocol.push(n1.sock, RTYPE, payload, source=src)
    peer = legacy(n2, primary=False)
    peer.wait_until(lambda r: r["best_server"] == n1.mac, 5, "the peer adopts ours as its primary")
    answers = []
    for _ in range(2):
        ans = peer.request(RTYPE)
        answers.append(ans)
        assert ans["ok"] and ans["forwarded"], ans
        got = ans["records"]
        missing = [m for m, p in expected.items() if got.get(m) != p]
        assert not missing, f"records missing or different in the answer: {missing}"
    rep = peer.report()
    lab.check_daemons()
    reqs = {c["id"]: c for c in rep["connections"] if c.get("purpose") == "request"}
    print(f"\n2016 secondary -> ours (primary), 2 requests answered in "
          + ", ".join(f"{a['took']:.3f} s" for a in answers) + "\n" + show_conns(rep))
    ids = [a["conn"] for a in answers]
    assert None not in ids and len(set(ids)) == 2, f"not one new connection per request: {ids}"
    for i in ids:
        c = reqs[i]
        pk = c["packets"]
        assert c["bytes_out"] == 7, c         # just the request
        assert pk and pk[-1]["type"] == STATUS_TXEND and c["end"] == "txend", show_conns(rep)
        assert all(p["type"] == PUSH_DATA for p in pk[:-1]) and pk[-1]["seqno"] == len(pk) - 1, show_conns(rep)
        assert len({p["tx_id"] for p in pk}) == 1, show_conns(rep)
        assert c["unread_at_close"] == 0, f"ours sent more after the answer's txend: {c}"
    assert sum(len(reqs[i]["packets"]) - 1 for i in ids) >= 4, "80 KB in fewer than 2 packets per answer?"
    log = daemon_log(n1)
    assert len(re.findall(rf"request for type {RTYPE} from {re.escape(n2.mac)}", log)) >= 2, log[-3000:]


# ---------------------------------------------------------------------------
# 4: ours (secondary) forwards a request to the 2016 primary

def test_ours_forwards_request_to_2016_primary(make_lab, legacy):
    lab = make_lab(2, params=LinkParams())
    n1, n2 = lab.nodes
    start_ours(n1, False)
    peer = legacy(n2, primary=True)
    theirs = random.Random(6).randbytes(5000)
    peer.set(RTYPE, theirs)
    wait_log(n1, r"new primary", timeout=5)
    t0 = time.monotonic()
    got = n1.read(RTYPE)
    took = time.monotonic() - t0
    time.sleep(0.3)
    rep = peer.report()
    lab.check_daemons()
    reqs = [c for c in closed_conns(rep, n1.ll6, "in") if c["packets"] and c["packets"][0]["type"] == REQUEST]
    print(f"\nours (secondary) `alfred -r` -> 2016 primary: {took:.3f} s\n" + show_conns(rep))
    assert got.get(n2.mac) == theirs, f"`alfred -r {RTYPE}` on ours: {sorted(got)}"
    assert reqs, f"no request reached the 2016 primary over TCP:\n{show_conns(rep)}"
    for c in reqs:
        assert len(c["packets"]) == 1 and c["packets"][0]["requested_type"] == RTYPE, show_conns(rep)
        assert c["bytes_out"] == c["to_send"] > 5000 and c["end"] == "all written", show_conns(rep)
        assert c["unread_at_close"] == 0, f"ours sent more behind its request: {c}"
    assert not fallbacks(n1, n2.ll6), fallbacks(n1, n2.ll6)


# ---------------------------------------------------------------------------
# 5: the session probe, tolerated

def test_session_probe_tolerated_by_2016_peer(make_lab, legacy):
    lab = make_lab(2, params=LinkParams())
    n1, n2 = lab.nodes
    peer = legacy(n2, primary=True)
    # the premise: a 2016 peer answers a hello with a plain close (a FIN,
    # not a reset) and nothing else
    pr = probe_once(n1, n2.ll6, HELLO, wait=2.0)
    assert pr["result"] == "eof" and pr["answered"] == "" and pr["after"] < 1.0, pr
    # ours, secondary, with the peer as its primary
    t_ours = time.monotonic()
    start_ours(n1, False)
    theirs = random.Random(7).randbytes(4000)
    peer.set(RTYPE, theirs)
    wait_log(n1, r"new primary", timeout=5)
    mine = random.Random(8).randbytes(BIG)
    n1.set(RTYPE, mine)
    took_push, _ = wait_peer_has(peer, n1.mac, mine, DELIVERY_LIMIT, "ours' record after the probe")
    t0 = time.monotonic()
    got = n1.read(RTYPE)
    took_req = time.monotonic() - t0
    mine2 = random.Random(9).randbytes(BIG + 100)
    n1.set(RTYPE, mine2)
    took_push2, _ = wait_peer_has(peer, n1.mac, mine2, DELIVERY_LIMIT, "ours' changed record")
    time.sleep(0.3)
    rep = peer.report()
    lab.check_daemons()
    conns = [c for c in closed_conns(rep, n1.ll6, "in") if c["t_open"] >= t_ours]
    probes, txs, problems = check_inbound_framing(conns)
    reqs = [c for c in conns if c["packets"] and c["packets"][0]["type"] == REQUEST]
    print(f"\nprobe from a raw client: {pr['result']} after {pr['after'] * 1000:.1f} ms; ours: push after "
          f"{took_push:.2f} s, `alfred -r` {took_req:.3f} s, change after {took_push2:.2f} s; "
          f"{len(probes)} probes, {len(txs)} transactions, {len(reqs)} requests\n" + show_conns(rep))
    assert got.get(n2.mac) == theirs, f"`alfred -r {RTYPE}` on ours: {sorted(got)}"
    assert not problems, "\n".join(problems) + "\n" + show_conns(rep)
    assert reqs and all(c["unread_at_close"] == 0 and c["end"] == "all written" for c in reqs), show_conns(rep)
    # once a transaction went through, ours knows the peer: no probe again
    if txs:
        first_done = min(c["t_close"] for c in txs)
        late = [c["id"] for c in probes if c["t_open"] > first_done]
        assert not late, f"probes after data went through (not remembered): {late}\n{show_conns(rep)}"
    assert txs, "ours' records did not come over TCP"
    assert not fallbacks(n1, n2.ll6), fallbacks(n1, n2.ll6)


# ---------------------------------------------------------------------------
# 6: ours without -t asks by UDP; the 2016 primary answers on a new connection

def test_2016_primary_answers_udp_request_over_tcp(make_lab, legacy):
    """The patch's process_alfred_request without a connection: with -t and
    an answer over 1232 bytes it opens a connection to the requester and
    pushes the answer there (then closes).  Ours, asking by UDP (no -t),
    takes that answer for its client's request."""
    lab = make_lab(2, params=LinkParams())
    n1, n2 = lab.nodes
    n1.label = "ours/secondary (no -t)"
    n1.start(ours(), primary=False, period=PERIOD,
             flags=["-d"] + [f for f in our_flags() if f not in ("-t", "--tcp", "-d")])
    peer = legacy(n2, primary=True)
    theirs = random.Random(10).randbytes(5000)
    peer.set(RTYPE, theirs)
    wait_log(n1, r"new primary", timeout=5)
    got = n1.read(RTYPE)
    time.sleep(0.3)
    rep = peer.report()
    lab.check_daemons()
    asked = [d for d in rep["udp_in"] if d["type"] == REQUEST and d["from"] == n1.ll6]
    answers = [c for c in closed_conns(rep, n1.ll6, "out") if c["purpose"] == "answer"]
    print(f"\nours (secondary, no -t) asks by UDP, the 2016 primary answers by TCP: {len(asked)} requests, "
          f"{len(answers)} answer connections\n" + show_conns(rep))
    assert got.get(n2.mac) == theirs, f"`alfred -r {RTYPE}` on ours: {sorted(got)}"
    assert asked, "ours' request did not come by UDP"
    assert answers, f"the peer did not answer over TCP:\n{show_conns(rep)}"
    for c in answers:
        assert c["bytes_out"] == c["to_send"] > 5000 and c["end"] == "all written", show_conns(rep)
        assert c["bytes_in"] == 0, f"ours wrote back on the answer's connection: {c}"
