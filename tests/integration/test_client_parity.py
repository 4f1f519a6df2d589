"""Client/daemon parity with Debian's alfred 2023.0.

One node (namespace with mesh0, veth link, no peers).  The same sequence of
client operations is run for every combination of daemon and client binary:

    reference: Debian daemon + Debian client
    compared:  ours+ours, ours daemon + Debian client, Debian daemon + our client

in primary (-m) and in secondary mode; every daemon is started fresh with
`-i mesh0 -b none [-m] -u SOCK -p 1`.  Every step's exit code, stdout and
stderr must be identical (the client's own path is replaced by <alfred>
first).  `-r` output is compared as a sorted list of lines (record order
follows the daemon's hash table); `-v` is compared by exit code only.
Client commands run inside the node's namespace (the -I interface check is
done by the client in its own namespace).

Then raw messages no client sends (malformed sets, server-status requests
with a body), and their network twins: push datagrams with a partial record
from a peer into a primary (n2 -> n1), and a fake primary's answer of that
kind to a secondary's forwarded request; each run against Debian's daemon
and ours, with identical results. The random version of the raw-message
comparison is test_differential.py.
"""

from __future__ import annotations

import dataclasses

import random
import signal
import socket
import struct
import subprocess
import time
from dataclasses import dataclass, field

import pytest

from helpers import PERIOD, debian, flags_for, ours, show, text_diff

from alfredlab import EventMonitor, LabError
from alfredlab.util import IP, mac_bytes

MISSING_SOCK = "/run/alfred-lab/does-not-exist/alfred.sock"

_rnd = random.Random(4242)
BIG_5000 = _rnd.randbytes(5000)
BIG_MAX = _rnd.randbytes(65509)       # largest payload the reference client accepts
BIG_OVER = _rnd.randbytes(70000)      # reference client silently truncates to 65509


@dataclass
class Step:
    args: list[str]
    stdin: bytes = b""
    cmp: str = "exact"        # exact | sorted | rc
    sock: bool = True         # append -u SOCK
    note: str = ""

    def title(self) -> str:
        a = " ".join(self.args) + (" -u SOCK" if self.sock else "")
        extra = f"  <<< {len(self.stdin)} bytes" if self.stdin else ""
        return f"alfred {a}{extra}" + (f"  ({self.note})" if self.note else "")


@dataclass
class Events:
    """Start `alfred -E` (on a pty), run the steps, kill it, compare its output."""
    steps: list[Step]
    extra: list[str] = field(default_factory=list)

    def title(self) -> str:
        return f"alfred -E {' '.join(self.extra)} -u SOCK (around {len(self.steps)} steps)".replace("  ", " ")


@dataclass
class EventsDaemonExit:
    """`alfred -E` running while the daemon is stopped with SIGTERM."""

    def title(self) -> str:
        return "alfred -E -u SOCK while the daemon is stopped"


def S(*a, **kw):
    return Step(list(a), **kw)


def scenario(mode: str) -> list:
    other = "secondary" if mode == "primary" else "primary"
    steps = [
        # --- pure client-side behaviour
        S("-h", sock=False, note="help"),
        S("-v", sock=False, cmp="rc", note="version: exit code only"),
        S("-x", sock=False, note="unknown option"),
        S("--foo", sock=False, note="unknown long option"),
        S("-r", "10", note="reserved type"),
        S("-r", "0"), S("-r", "63"), S("-r", "256"), S("-r", "-1"), S("-r", "abc"),
        S("-s", "300", stdin=b"x"), S("-s", "63", stdin=b"x"), S("-s", "0", stdin=b"x"),
        S("-s", "abc", stdin=b"x"),
        S("-V", "300", "-s", "64", stdin=b"x"), S("-s", "64", "-V", "256", stdin=b"x"),
        S("-s", "64", "-V", "-1", stdin=b"x"),
        S("-M", "foo"),
        S("-r", "64", "-u", MISSING_SOCK, sock=False, note="missing socket"),
        S("-s", "64", "-u", MISSING_SOCK, sock=False, stdin=b"x", note="missing socket"),
        S("-S", "-u", MISSING_SOCK, sock=False, note="missing socket"),
        S("-M", "primary", "-u", MISSING_SOCK, sock=False, note="missing socket"),
        S("-E", "-u", MISSING_SOCK, sock=False, note="missing socket"),
        # --- data
        S("-r", "64", cmp="sorted", note="empty"),
        S("-r", "64", "-d", cmp="sorted", note="empty"),
        S("-s", "64", stdin=b"hello world\n"),
        S("-s", "65", stdin=b'quotes " and backslash \\ and a literal \\x41 "x"'),
        S("-s", "200", stdin=b"line1\nline2\r\n\ttab\x00nul\x7fdel"),
        S("-s", "255", stdin=bytes(range(256))),
        S("-s", "66", stdin=b""),
        S("-s", "67", "-V", "3", stdin=b"versioned"),
        S("-V", "255", "-s", "68", stdin=b"v255"),
        S("-s", "69", "-V", "abc", stdin=b"non-numeric version"),
        S("--set-data", "70", "--req-version", "7", stdin=b"long options"),
        S("-s", "71", stdin=BIG_5000),
        S("-s", "72", stdin=BIG_MAX),
        S("-s", "73", stdin=BIG_OVER, note="over the maximum"),
    ]
    for t in (64, 65, 200, 255, 66, 67, 68, 69, 70, 71, 72, 73):
        steps += [S("-r", str(t), cmp="sorted"), S("-r", str(t), "-d", cmp="sorted")]
    steps += [
        S("-d", "-r", "67", cmp="sorted"),
        S("--request", "65", "--verbose", cmp="sorted"),
        S("-s", "64", stdin=b"second version"),
        S("-s", "64", "-V", "9", stdin=b"third version"),
        S("-r", "64", "-d", cmp="sorted"),
        S("-r", "100", cmp="sorted", note="type never set"),
        S("-r", "100", "-d", cmp="sorted"),
        # --- server status / mode switch
        S("-S"),
        S("--server-status"),
        S("-M", other), S("-S"),
        S("-M", mode), S("-S"),
        S("-M", "slave"), S("-S"),
        S("-M", "master"), S("-S"),
        S("-M", "secondary"), S("-S"),
        S("-M", "primary"), S("-S"),
        S("-M", mode), S("-S"),
        S("-r", "64", cmp="sorted", note="data survives mode switches"),
        # --- interfaces
        S("-I", "mesh0"), S("-S"),
        S("-I", "mesh0,lo"), S("-S"),
        S("-I", "nonexist"), S("-S"),
        S("-I", "mesh0,nonexist"), S("-S"),
        S("-I", "mesh0,mesh0"), S("-S"),
        S("-I", ""), S("-S"),
        S("-I", "mesh0"), S("-S"),
        S("-B", "bat1"), S("-S"),
        S("-B", "none"), S("-S"),
        S("--change-bat-iface", "bat0"), S("-S"),
        S("-B", "none"), S("-S"),
        # --- event monitor
        Events([
            S("-s", "64", stdin=b"event one"),
            S("-s", "64", stdin=b"event one", note="unchanged data"),
            S("-s", "64", stdin=b"event two"),
            S("-s", "201", stdin=b"x"),
            S("-s", "65", "-V", "4", stdin=b"new data, new version"),
            S("-s", "65", "-V", "5", stdin=b"new data, new version", note="version change only"),
            S("-s", "202", stdin=b""),
            S("-s", "202", stdin=b"", note="unchanged empty data"),
        ]),
        Events([S("-s", "203", stdin=b"verbose monitor")], extra=["-d"]),
        S("-r", "64", "-d", cmp="sorted"),
        S("-r", "201", "-d", cmp="sorted"),
        S("-r", "65", "-d", cmp="sorted", note="version after version-only change"),
        S("-S"),
        EventsDaemonExit(),
        S("-r", "64", note="daemon gone"),
    ]
    return steps


@dataclass
class Outcome:
    title: str
    rc: int | None
    out: bytes
    err: bytes
    cmp: str


def _norm(b: bytes, client: str) -> bytes:
    """Replace the program path (argv[0], e.g. in getopt's messages)."""
    for path in sorted({client, ours(), debian()}, key=len, reverse=True):
        b = b.replace(path.encode(), b"<alfred>")
    return b


def _cli(node, client: str, st: Step) -> Outcome:
    cp = node.client(st.args, input=st.stdin, bin=client, sock=st.sock, timeout=20)
    return Outcome(st.title(), cp.returncode, _norm(cp.stdout, client), _norm(cp.stderr, client), st.cmp)


def run_scenario(node, daemon: str, client: str, mode: str) -> list[Outcome]:
    node.stop()
    node.start(daemon, primary=(mode == "primary"), period=PERIOD, flags=flags_for(daemon))
    results: list[Outcome] = []
    for st in scenario(mode):
        if isinstance(st, Step):
            results.append(_cli(node, client, st))
        elif isinstance(st, Events):
            mon = EventMonitor([client, "-E", *st.extra, "-u", node.sock], ns=node.ns)
            time.sleep(0.3)
            sub = [_cli(node, client, s) for s in st.steps]
            out, rc = mon.stop(drain=0.4)
            for o in sub:
                o.title = "[during -E] " + o.title
            results.extend(sub)
            results.append(Outcome(st.title(), rc, _norm(out, client), b"", "exact"))
        elif isinstance(st, EventsDaemonExit):
            mon = EventMonitor([client, "-E", "-u", node.sock], ns=node.ns)
            time.sleep(0.3)
            node.stop(signal.SIGTERM)
            time.sleep(0.3)
            out, rc = mon.stop(drain=0.2)
            results.append(Outcome(st.title(), rc, _norm(out, client), b"", "exact"))
            continue
        if not node.running():
            node.check()
    return results


# The one documented difference: our usage text lists the options we add,
# -t (the TCP transport) and --keyfile/--auth-mode (authenticated meshes).
# Exactly these lines are removed before comparing.
TCP_USAGE_LINES = (
    b"  -t, --tcp                           send large pushes, syncs and requests to other\n"
    b"                                      servers over TCP (falls back to UDP)\n"
    b"  --keyfile [path]                    authenticate every server-to-server datagram with\n"
    b"                                      the keys in this file (mode 600, one 32-byte key a\n"
    b"                                      line, hex or base64; the first one seals, all open);\n"
    b"                                      re-read on SIGHUP. Not with -t yet\n"
    b"  --auth-mode [enforce|transition]    enforce: take authenticated datagrams only (default);\n"
    b"                                      transition: send sealed and plain, take both\n"
)


def _without_tcp_usage(out: bytes) -> bytes:
    return out.replace(TCP_USAGE_LINES, b"", 1) if out.startswith(b"Usage: alfred") else out


def compare(ref: list[Outcome], got: list[Outcome]) -> list[str]:
    problems = []
    for i, (r, g) in enumerate(zip(ref, got)):
        g = dataclasses.replace(g, out=_without_tcp_usage(g.out))
        assert r.title == g.title
        diffs = []
        if r.rc != g.rc:
            diffs.append(f"  exit code: expected {r.rc}, got {g.rc}")
        if r.cmp == "rc":
            pass
        else:
            ro, go = r.out, g.out
            if r.cmp == "sorted":
                ro = b"\n".join(sorted(ro.split(b"\n")))
                go = b"\n".join(sorted(go.split(b"\n")))
            if ro != go:
                diffs.append("  stdout differs" + (" (as sorted lines)" if r.cmp == "sorted" else "")
                             + ":\n" + text_diff(r.out, g.out, "debian", "candidate")
                             + f"\n  expected: {show(r.out, 600)!r}\n  got:      {show(g.out, 600)!r}")
            if r.err != g.err:
                diffs.append(f"  stderr differs:\n  expected: {show(r.err, 600)!r}\n  got:      {show(g.err, 600)!r}")
        if diffs:
            problems.append(f"step {i}: {r.title}\n" + "\n".join(diffs))
    if len(ref) != len(got):
        problems.append(f"transcript length differs: {len(ref)} vs {len(got)}")
    return problems


@pytest.fixture(scope="module")
def parity_node(module_lab_factory):
    lab = module_lab_factory(1, link="veth")
    return lab.node(1)


_reference: dict[str, list[Outcome]] = {}


def reference(node, mode: str) -> list[Outcome]:
    if mode not in _reference:
        _reference[mode] = run_scenario(node, debian(), debian(), mode)
    return _reference[mode]


def test_reference_transcript_is_sane(parity_node):
    """Guards the test itself: the Debian transcript must show the facts
    the comparisons rely on (so a broken environment cannot make every
    comparison trivially equal)."""
    ref = {o.title: o for o in reference(parity_node, "primary")}
    mac = parity_node.mac.encode()
    assert ref["alfred -r 64 -d -u SOCK  (empty)"].out == b""
    o = ref["alfred -r 255 -u SOCK"]
    assert o.rc == 0 and o.out.startswith(b'{ "' + mac + b'", "\\x00\\x01') and o.out.endswith(b'\\xff" },\n')
    assert ref["alfred -r 67 -d -u SOCK"].out == b'{ "' + mac + b'", "versioned", 3 },\n'
    assert ref["alfred -S -u SOCK"].out == (b"- mode: primary\n- interface: mesh0\n\t- status: active\n"
                                            b"- batman-adv interface: none\n")
    assert ref["alfred -r 10 -u SOCK  (reserved type)"].rc == 1
    ev = [o for o in reference(parity_node, "primary") if o.title.startswith("alfred -E -u SOCK (around")][0]
    assert ev.out.count(b"Event: type = 64") == 2, ev.out


COMBOS = [("ours", "ours"), ("ours", "debian"), ("debian", "ours")]


@pytest.mark.parametrize("mode", ["primary", "secondary"])
@pytest.mark.parametrize("daemon_kind,client_kind", COMBOS,
                         ids=[f"daemon_{d}-client_{c}" for d, c in COMBOS])
def test_client_parity(parity_node, mode, daemon_kind, client_kind):
    pick = {"ours": ours(), "debian": debian()}
    ref = reference(parity_node, mode)
    got = run_scenario(parity_node, pick[daemon_kind], pick[client_kind], mode)
    problems = compare(ref, got)
    if problems:
        # Debian's own transcript is not always the same under load (CI's
        # ASan run, 2026-12-02: Debian's daemon and client once lost the
        # over-long set of type 73 that every candidate, Debian's daemon
        # among them, stored). A difference of ours repeats: a comparison
        # that differs is taken once more, against a fresh reference.
        first = problems
        _reference[mode] = ref = run_scenario(parity_node, debian(), debian(), mode)
        got = run_scenario(parity_node, pick[daemon_kind], pick[client_kind], mode)
        problems = compare(ref, got)
        if not problems:
            print(f"\nfirst comparison differed in {len(first)} step(s), the second matched:\n"
                  + "\n".join(p.splitlines()[0] for p in first))
    if problems:
        pytest.fail(f"{len(problems)} step(s) differ from Debian's alfred "
                    f"(daemon={pick[daemon_kind]}, client={pick[client_kind]}, mode={mode}):\n\n"
                    + "\n\n".join(problems) + "\n\n--- daemon log ---\n" + parity_node.logs(60),
                    pytrace=False)


# ---------------------------------------------------------------------------
# Parsing parity (issue 13): raw messages the command-line client never
# sends, each run against Debian's daemon and ours with identical results.
#
# Upstream's rules (unix_sock.c and recv.c, 2023.0 and 2026 alike):
# - unix socket, push data: the first record is stored if it lies wholly
#   inside the TLV; whatever follows it (stray bytes, more records, a cut
#   record) is ignored. Listeners are notified if the record changed.
# - network, push data: a packet of at least the 4-byte transaction header
#   counts as one of its transaction's packets whatever its records look
#   like; when the transaction completes, records are read while a whole
#   record header is left and stop at the first one whose data runs past
#   the TLV: the records before it are stored (and notified), the rest is
#   ignored. A shorter packet is dropped and does not count.
# - unix socket, server status: answered whatever the body holds, as long
#   as the version is right and the TLV length fits what was read.

RAW_REPROS = [
    # (title, hex)
    ("push: record 'abc' then 2 stray bytes", "0000001312340000000000000000400000036162630000"),
    ("request type 64", "02000003400001"),
    ("push: record length 1 shorter than its data 'abc'", "000000131234000000000000000040000001616263aabb"),
    ("request type 64", "02000003400002"),
    ("server status, 1-byte body", "0800000100"),
    ("server status, body with an item of wrong version, 4 bytes after the TLV",
     "080000040005000008000000"),
]


def _raw(sock: str, data: bytes, wait: float = 5.0) -> tuple[bytes, bool]:
    """One message on a new connection; (reply, closed by the daemon)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(wait)
    s.connect(sock)
    out, closed = b"", False
    try:
        s.sendall(data)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            d = s.recv(65536)
            if not d:
                closed = True
                break
            out += d
    except socket.timeout:
        pass
    finally:
        s.close()
    return out, closed


def run_raw_repros(node, daemon: str, mode: str) -> list[tuple[str, bytes, bytes]]:
    node.stop()
    node.start(daemon, primary=(mode == "primary"), period=PERIOD, flags=flags_for(daemon))
    results = []
    mon = EventMonitor([debian(), "-E", "-u", node.sock], ns=node.ns)
    time.sleep(0.3)
    for title, hx in RAW_REPROS:
        reply, closed = _raw(node.sock, bytes.fromhex(hx))
        results.append((f"{title}: {hx}", reply, b"closed" if closed else b"left open"))
        if hx.startswith("00"):
            for client in (debian(), ours()):
                cp = node.client(["-r", "64"], bin=client)
                results.append((f"  then alfred -r 64 ({'debian' if client == debian() else 'our'} client)",
                                cp.stdout, cp.stderr + b" rc=%d" % cp.returncode))
    out, _rc = mon.stop(drain=0.4)
    results.append(("alfred -E (debian client) around all of it", out, b""))
    node.check()
    return results


@pytest.mark.parametrize("mode", ["primary", "secondary"])
def test_raw_message_parity(parity_node, mode):
    ref = run_raw_repros(parity_node, debian(), mode)
    got = run_raw_repros(parity_node, ours(), mode)
    mac = parity_node.mac.encode()
    # The facts the issue reports for Debian, so the comparison is not vacuous.
    refd = {t: (o, e) for t, o, e in ref}
    reqs = [o for t, o, _ in ref if t.startswith("request type 64")]
    assert reqs[0].endswith(b"\x40\x00\x00\x03abc") and reqs[1].endswith(b"\x40\x00\x00\x01a"), reqs
    r64 = [o for t, o, _ in ref if t.startswith("  then alfred -r 64 (debian")]
    assert r64 == [b'{ "' + mac + b'", "abc" },\n', b'{ "' + mac + b'", "a" },\n'], r64
    for t, (o, e) in refd.items():
        if t.startswith("server status"):
            assert o.startswith(b"\x08\x00") and e == b"closed", (t, o, e)
    assert refd["alfred -E (debian client) around all of it"][0].count(b"Event: type = 64") == 2
    problems = [f"{rt}\n  debian: {ro!r} {re!r}\n  ours:   {go!r} {ge!r}"
                for (rt, ro, re), (_gt, go, ge) in zip(ref, got) if (ro, re) != (go, ge)]
    if problems:
        pytest.fail(f"{len(problems)} raw message(s) differ from Debian's alfred ({mode}):\n\n"
                    + "\n\n".join(problems) + "\n\n--- daemon log ---\n" + parity_node.logs(60),
                    pytrace=False)


# The network twin: datagrams from a peer (a Python script in n2's namespace,
# sending from n2's EUI-64 link-local address) into a primary on n1.

_SEND = r"""
import socket, sys
dst, src, ifname = sys.argv[1:4]
scope = socket.if_nametoindex(ifname)
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind((src, 0, 0, scope))
for h in sys.argv[4:]:
    s.sendto(bytes.fromhex(h), (dst, 16962, 0, scope))
"""


def _tlv(t: int, body: bytes, length: int | None = None) -> bytes:
    return struct.pack("!BBH", t, 0, len(body) if length is None else length) + body


def _rec(src: bytes, t: int, data: bytes, length: int | None = None) -> bytes:
    return src + struct.pack("!BBH", t, 0, len(data) if length is None else length) + data


def _push(tx: int, seq: int, records: bytes) -> bytes:
    return _tlv(0, struct.pack("!HH", tx, seq) + records)


def _txend(tx: int, n: int) -> bytes:
    return _tlv(3, struct.pack("!HH", tx, n))


def net_datagrams(peer: bytes) -> list[bytes]:
    P = peer
    return [
        # 1: one record, then 2 stray bytes (the repro, as a datagram)
        _push(1, 0, _rec(P, 64, b"abc") + b"\0\0"), _txend(1, 1),
        # 2: good record, then one whose length runs past the TLV; a second packet
        _push(2, 0, _rec(P, 65, b"one") + _rec(P, 66, b"bad", 9)), _push(2, 1, _rec(P, 67, b"two")),
        _txend(2, 2),
        # 3: a packet without any whole record still counts for the transaction
        _push(3, 0, b"\x01\x02\x03\x04\x05"), _push(3, 1, _rec(P, 68, b"x")), _txend(3, 2),
        # 4: a packet shorter than the transaction header does not count:
        #    the transaction never completes, 69 is never stored
        _tlv(0, b"\0\0\0"), _push(4, 1, _rec(P, 69, b"y")), _txend(4, 2),
        # 5: record length shorter than its data
        _push(5, 0, _rec(P, 70, b"abc", 1) + b"\xaa\xbb"), _txend(5, 1),
        # 6: a trailing zero-length record is a record
        _push(6, 0, _rec(P, 71, b"z") + _rec(P, 72, b"")), _txend(6, 1),
    ]


NET_TYPES = range(64, 73)


def run_net_twin(lab, daemon: str) -> list[tuple[str, bytes]]:
    n1, n2 = lab.node(1), lab.node(2)
    n1.stop()
    n1.start(daemon, primary=True, period=PERIOD, flags=flags_for(daemon))
    mon = EventMonitor([debian(), "-E", "-u", n1.sock], ns=n1.ns)
    time.sleep(0.3)
    n2.exec(["/usr/bin/python3", "-c", _SEND, n1.ll6, n2.ll6, "mesh0"]
            + [d.hex() for d in net_datagrams(mac_bytes(n2.mac))])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not n1.client(["-r", "72"], bin=debian()).stdout:
        time.sleep(0.1)
    time.sleep(0.3)
    out = [(f"alfred -r {t}", n1.client(["-r", str(t)], bin=debian()).stdout) for t in NET_TYPES]
    ev, _rc = mon.stop(drain=0.4)
    out.append(("alfred -E", ev))
    n1.check()
    n1.stop()
    return out


def test_network_push_with_partial_record_parity(make_lab):
    lab = make_lab(2, link="veth")
    ref = run_net_twin(lab, debian())
    got = run_net_twin(lab, ours())
    peer = lab.node(2).mac.encode()
    want = {64: b"abc", 65: b"one", 67: b"two", 68: b"x", 70: b"a", 71: b"z", 72: b""}
    for (title, o), t in zip(ref, NET_TYPES):
        expect = b'{ "' + peer + b'", "' + want[t] + b'" },\n' if t in want else b""
        assert o == expect, f"Debian's primary, {title}: {o!r} (the test's assumption: {expect!r})"
    assert ref[-1][1].count(b"Event:") == len(want), ref[-1][1]
    problems = [f"{t}\n  debian: {r!r}\n  ours:   {g!r}" for (t, r), (_t, g) in zip(ref, got) if r != g]
    if problems:
        pytest.fail("the primary stores other records than Debian's from the same datagrams:\n\n"
                    + "\n\n".join(problems) + "\n\n--- daemon logs ---\n" + lab.daemon_logs(60),
                    pytrace=False)


# The secondary's side of the network path: a fake primary (a Python script
# in n2's namespace) announces itself and answers every request with a
# transaction whose packets hold a record then 2 stray bytes, no whole record
# at all, and a record whose length is shorter than its data.

_FAKE_PRIMARY = r"""
import select, socket, struct, sys, time
dst, src, ifname, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
A, B = bytes.fromhex("026600000001"), bytes.fromhex("026600000002")
scope = socket.if_nametoindex(ifname)
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind((src, 16962, 0, scope))
def tlv(t, body): return struct.pack("!BBH", t, 0, len(body)) + body
def rec(m, t, data, ln=None): return m + struct.pack("!BBH", t, 0, len(data) if ln is None else ln) + data
end, nxt = time.monotonic() + seconds, 0.0
while time.monotonic() < end:
    if time.monotonic() >= nxt:
        s.sendto(tlv(1, b""), (dst, 16962, 0, scope))
        nxt = time.monotonic() + 0.2
    if not select.select([s], [], [], 0.05)[0]:
        continue
    pkt, addr = s.recvfrom(65536)
    if len(pkt) < 7 or pkt[0] != 2:
        continue
    rtype, tx = pkt[4], struct.unpack("!H", pkt[5:7])[0]
    for p in (tlv(0, struct.pack("!HH", tx, 0) + rec(A, rtype, b"abc") + b"\0\0"),
              tlv(0, struct.pack("!HH", tx, 1) + b"\x01\x02\x03\x04\x05"),
              tlv(0, struct.pack("!HH", tx, 2) + rec(B, rtype, b"abc", 1) + b"\xaa\xbb"),
              tlv(3, struct.pack("!HH", tx, 3))):
        s.sendto(p, (addr[0], 16962, 0, scope))
"""


def run_secondary_twin(lab, daemon: str) -> list[tuple[str, bytes]]:
    n1, n2 = lab.node(1), lab.node(2)
    n1.stop()
    fake = subprocess.Popen([IP, "netns", "exec", n2.ns, "/usr/bin/python3", "-c", _FAKE_PRIMARY,
                             n1.ll6, n2.ll6, "mesh0", "30"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        n1.start(daemon, primary=False, period=PERIOD, flags=flags_for(daemon))
        mon = EventMonitor([debian(), "-E", "-u", n1.sock], ns=n1.ns)
        time.sleep(0.3)
        deadline = time.monotonic() + 10
        cp = n1.client(["-r", "64"], bin=debian())
        while not cp.stdout and time.monotonic() < deadline and fake.poll() is None:
            time.sleep(0.2)
            cp = n1.client(["-r", "64"], bin=debian())
        out = [("alfred -r 64 (first answer with records)", b"".join(sorted(cp.stdout.splitlines(True))))]
        ev, _rc = mon.stop(drain=0.4)
        out.append(("alfred -E", ev))
        n1.check()
    finally:
        fake.terminate()
        _o, err = fake.communicate(timeout=5)
        n1.stop()
    if fake.returncode not in (0, -15):
        raise LabError(f"fake primary failed ({fake.returncode}): {err.decode(errors='replace')}")
    return out


def test_secondary_reply_with_partial_record_parity(make_lab):
    lab = make_lab(2, link="veth")
    ref = run_secondary_twin(lab, debian())
    got = run_secondary_twin(lab, ours())
    want = b'{ "02:66:00:00:00:01", "abc" },\n{ "02:66:00:00:00:02", "a" },\n'
    assert ref[0][1] == want, f"Debian's secondary answered {ref[0][1]!r} (the test assumes {want!r})"
    problems = [f"{t}\n  debian: {r!r}\n  ours:   {g!r}" for (t, r), (_t, g) in zip(ref, got) if r != g]
    if problems:
        pytest.fail("the secondary keeps other records than Debian's from the same answer:\n\n"
                    + "\n\n".join(problems) + "\n\n--- daemon logs ---\n" + lab.daemon_logs(60),
                    pytrace=False)


def _dump(argv=None) -> int:
    """Print the transcript for one daemon/client combination, e.g.
    sudo /usr/bin/python3 tests/integration/test_client_parity.py --daemon /usr/sbin/alfred --mode secondary"""
    import argparse
    from alfredlab import Lab
    ap = argparse.ArgumentParser(description=_dump.__doc__)
    ap.add_argument("--daemon", default=debian())
    ap.add_argument("--client", default=None, help="default: same as --daemon")
    ap.add_argument("--mode", choices=("primary", "secondary"), default="primary")
    a = ap.parse_args(argv)
    with Lab(1, link="veth") as lab:
        for i, o in enumerate(run_scenario(lab.node(1), a.daemon, a.client or a.daemon, a.mode)):
            print(f"--- step {i}: {o.title}  [exit {o.rc}]  (compare: {o.cmp})")
            if o.out:
                print("stdout: " + show(o.out, 400).replace("\n", "\n        "))
            if o.err:
                print("stderr: " + show(o.err, 400).replace("\n", "\n        "))
    return 0


if __name__ == "__main__":
    raise SystemExit(_dump())
