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
"""

from __future__ import annotations

import dataclasses

import random
import signal
import time
from dataclasses import dataclass, field

import pytest

from helpers import PERIOD, debian, flags_for, ours, show, text_diff

from alfredlab import EventMonitor

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


# The one documented difference: our usage text lists the -t option that
# the TCP transport adds. Exactly these lines are removed before comparing.
TCP_USAGE_LINES = (
    b"  -t, --tcp                           send large pushes, syncs and requests to other\n"
    b"                                      servers over TCP (falls back to UDP)\n"
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
        pytest.fail(f"{len(problems)} step(s) differ from Debian's alfred "
                    f"(daemon={pick[daemon_kind]}, client={pick[client_kind]}, mode={mode}):\n\n"
                    + "\n\n".join(problems) + "\n\n--- daemon log ---\n" + parity_node.logs(60),
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
