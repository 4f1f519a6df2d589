"""A cross-built daemon (another CPU, run by qemu-user) in a mesh with native ones.

Environment (scripts/test.sh sets both, after scripts/cross.sh has built the
daemon):
  ALFRED_CROSS_BIN   the cross-built alfred, e.g. build-cross-s390x/alfred
  ALFRED_CROSS_QEMU  the qemu-user command that runs it, shell-quoted
                     (default: from the binary's ELF header, e.g. qemu-s390x)
Like every integration test, this one never skips: without ALFRED_CROSS_BIN,
or with a binary that is not a foreign one or does not run under qemu, it
fails and says how to build one (scripts/cross.sh s390x).

Four nodes on one clean VDE segment, all with `-p 1` and `-d`:
    n1 primary (A)      n2 primary (B)
    n3 native secondary n4 cross secondary
Our secondaries with `-b none` adopt the primary of the lowest MAC, n1. So
with A = native, B = cross ("native-first") the cross secondary pushes to
a native primary and is answered by it; with A = cross, B = native
("cross-first") a native secondary pushes to the cross primary; in both the
two primaries sync each other. Each arrangement runs over UDP (no `-t`) and
over TCP sessions (`-t` on all four).

Each node sets its own record with its own client (the cross nodes with the
cross client under qemu); the clock starts when the last `alfred -s` has
returned, and every node is polled with the native `alfred -r` every 0.1 s.
Small records must be on all four nodes within 3 sync periods (+ 1 s for
qemu and polling, as in test_mixed_mesh.py); then updates of them (same
bound), 5000-byte records from all four and 60000-byte records from both
secondaries must arrive intact (generous deadlines). Then every node's view
through the cross client (`-r -d`, under qemu) must be the expected records
with their versions. With `-t` every daemon's log must show a session up and
no fallback to UDP.
"""

from __future__ import annotations

import os
import random
import re
import shlex
import shutil
import subprocess
import time

import pytest

from helpers import PERIOD, flags_for, ours

from alfredlab import parse_records_verbose, wait_converged
from alfredlab.util import IP
from test_tcp_transport import FALLBACK_RE, daemon_log

STARTUP = 1.5 * PERIOD
LIMIT = 3 * PERIOD
SLACK = 1.0  # qemu-user's slower start-up and socket calls, and the 0.1 s polling

# e_machine of the ELF header -> (name, qemu-user program by endianness)
ELF_MACHINES = {
    2: ("sparc", {"big": "qemu-sparc"}),
    8: ("mips", {"little": "qemu-mipsel", "big": "qemu-mips"}),
    20: ("ppc", {"big": "qemu-ppc"}),
    21: ("ppc64", {"little": "qemu-ppc64le", "big": "qemu-ppc64"}),
    22: ("s390x", {"big": "qemu-s390x"}),
    40: ("arm", {"little": "qemu-arm", "big": "qemu-armeb"}),
    183: ("aarch64", {"little": "qemu-aarch64"}),
    243: ("riscv", {"little": "qemu-riscv64"}),
}
EM_X86_64, EM_386 = 62, 3
SESSION_UP_RE = re.compile(r"tcp \d+: session up")

HOW = ("build one with `scripts/cross.sh s390x` and set ALFRED_CROSS_BIN=$PWD/build-cross-s390x/alfred "
       "(ALFRED_CROSS_QEMU=qemu-s390x); scripts/test.sh does both")


def _elf(path: str) -> tuple[int, str, int] | None:
    """-> (ELF class 1/2, 'little'|'big', e_machine) or None if not ELF."""
    with open(path, "rb") as f:
        h = f.read(20)
    if len(h) < 20 or h[:4] != b"\x7fELF" or h[5] not in (1, 2):
        return None
    order = "little" if h[5] == 1 else "big"
    return h[4], order, int.from_bytes(h[18:20], order)


class Cross:
    def __init__(self, binary: str, qemu: list[str], arch: str):
        self.bin = binary
        self.qemu = qemu
        self.arch = arch

    def client(self, nd, args, input: bytes | None = None, timeout: float = 30.0) -> subprocess.CompletedProcess:
        """The cross client under qemu in nd's namespace, on nd's socket."""
        argv = [IP, "netns", "exec", nd.ns] + self.qemu + [self.bin] + list(args) + ["-u", nd.sock]
        return subprocess.run(argv, input=input if input is not None else b"", stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=timeout)


@pytest.fixture(scope="module")
def cross() -> Cross:
    b = os.environ.get("ALFRED_CROSS_BIN", "")
    if not b:
        pytest.fail(f"ALFRED_CROSS_BIN is not set: no cross-built daemon to test -- {HOW}", pytrace=False)
    if not (os.path.isfile(b) and os.access(b, os.X_OK)):
        pytest.fail(f"ALFRED_CROSS_BIN {b} not found or not executable -- {HOW}", pytrace=False)
    elf = _elf(b)
    if elf is None:
        pytest.fail(f"ALFRED_CROSS_BIN {b} is not an ELF program -- {HOW}", pytrace=False)
    cls, order, machine = elf
    if machine in (EM_X86_64, EM_386):
        pytest.fail(f"ALFRED_CROSS_BIN {b} is an x86 program, not a cross-built one -- {HOW}", pytrace=False)
    name, progs = ELF_MACHINES.get(machine, (f"machine {machine}", {}))
    arch = f"{name}-{'64' if cls == 2 else '32'}{order[0]}e"  # e.g. s390x-64be, arm-32le
    qemu = shlex.split(os.environ.get("ALFRED_CROSS_QEMU", "")) or ([progs[order]] if order in progs else [])
    if not qemu:
        pytest.fail(f"ALFRED_CROSS_BIN {b} is for {name} ({order}-endian), for which no qemu-user program "
                    "is known: set ALFRED_CROSS_QEMU", pytrace=False)
    if not shutil.which(qemu[0]):
        pytest.fail(f"{qemu[0]} (ALFRED_CROSS_QEMU) not found -- apt-get install qemu-user", pytrace=False)
    # -v prints the version and exits 1, as upstream's does
    cp = subprocess.run(qemu + [b, "-v"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    if b"A.L.F.R.E.D." not in cp.stdout:
        pytest.fail(f"`{' '.join(qemu + [b])} -v` failed (exit {cp.returncode}):\n"
                    f"{cp.stdout.decode(errors='replace')}", pytrace=False)
    print(f"\nALFRED_CROSS_BIN={b} ({arch}), under {' '.join(qemu)}: {cp.stdout.decode().splitlines()[0]}")
    return Cross(b, qemu, arch)


def _converge(lab, cross: Cross, expected, rtype, what, limit=None, deadline=None):
    """Set `expected` ({mac: payload}) on the owning nodes with their own
    clients, then wait until every node returns all of them."""
    for nd in lab.nodes:
        if nd.mac not in expected:
            continue
        if nd.bin == cross.bin:
            cp = cross.client(nd, ["-s", str(rtype)], input=expected[nd.mac])
            if cp.returncode != 0:
                pytest.fail(f"{nd.name} ({nd.label}): cross `alfred -s {rtype}` exit {cp.returncode}: "
                            f"{cp.stderr.decode(errors='replace')}", pytrace=False)
        else:
            nd.set(rtype, expected[nd.mac], bin=ours())
    t0 = time.monotonic()
    deadline = deadline or 10.0
    res = wait_converged(lab.nodes, {rtype: expected}, t0=t0, deadline_s=deadline, interval=0.1,
                         client_bin=ours())
    lab.check_daemons()
    print(f"{what}:\n{res.table()}\n{res.result_line(test=what)}")
    if res.all_converged and (limit is None or res.max_s <= limit + SLACK):
        return
    why = (f"not every node got every record intact within {deadline:g}s" if not res.all_converged else
           f"converged, but slower than {limit:g}s (+{SLACK}s for qemu and polling): {res.max_s:.3f}s")
    lacking = []
    for r in res.nodes:
        got = r.last_view.get(rtype, {})
        miss = [m for m in sorted(expected) if got.get(m) != expected[m]]
        lacking.append(f"  {r.node} ({r.label}) lacks {', '.join(miss) or 'nothing'}"
                       + (f"; last error: {r.errors[-1]}" if r.errors else ""))
    pytest.fail(f"{what}: {why}\n{res.table()}\n" + "\n".join(lacking), pytrace=False)


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
@pytest.mark.parametrize("first", ["native", "cross"], ids=["native-first", "cross-first"])
def test_cross_daemon_in_native_mesh(make_lab, cross, first, tcp):
    lab = make_lab(4, link="vde")
    kinds = {1: first, 2: "cross" if first == "native" else "native", 3: "native", 4: "cross"}
    for idx in (1, 2, 3, 4):
        nd = lab.node(idx)
        primary = idx in (1, 2)
        kind = kinds[idx]
        nd.label = f"{cross.arch if kind == 'cross' else 'native'}/{'primary' if primary else 'secondary'}"
        flags = ["-d"] + (["-t"] if tcp else [])
        if kind == "cross":
            nd.start(cross.bin, primary=primary, period=PERIOD, flags=flags, wrapper=cross.qemu, wait=False)
        else:
            nd.start(ours(), primary=primary, period=PERIOD, flags=flags + flags_for(ours()), wait=False)
    for nd in lab.nodes:
        nd.wait_ready(30)
    time.sleep(STARTUP)
    lab.check_daemons()
    how = "-t" if tcp else "UDP"

    small = {nd.mac: f"record of {nd.name} ({nd.label})\n".encode() for nd in lab.nodes}
    _converge(lab, cross, small, 64, f"{how}, {first} first: small records", limit=LIMIT)
    upd = {nd.mac: f"update of {nd.name} ({nd.label})".encode() for nd in lab.nodes}
    _converge(lab, cross, upd, 64, f"{how}, {first} first: updated records", limit=LIMIT)
    rnd = random.Random(11)
    big = {nd.mac: rnd.randbytes(5000) for nd in lab.nodes}
    _converge(lab, cross, big, 65, f"{how}, {first} first: 5000-byte records", deadline=10 * PERIOD)
    huge = {lab.node(3).mac: rnd.randbytes(60000), lab.node(4).mac: rnd.randbytes(60000)}
    _converge(lab, cross, huge, 66, f"{how}, {first} first: 60000-byte records", deadline=30 * PERIOD)

    # every node's store through the cross client, versions included
    problems = []
    for nd in lab.nodes:
        for rtype, want in ((64, upd), (65, big), (66, huge)):
            cp = cross.client(nd, ["-r", str(rtype), "-d"])
            got = parse_records_verbose(cp.stdout) if cp.returncode == 0 else {}
            exp = {m: (d, 0) for m, d in want.items()}
            if got != exp:
                ok = sum(1 for m, v in exp.items() if got.get(m) == v)
                problems.append(f"{nd.name} ({nd.label}): cross `alfred -r {rtype} -d` exit {cp.returncode}: "
                                f"{ok} of {len(exp)} records as expected, {len(got)} returned "
                                f"{cp.stderr.decode(errors='replace')}")
    if tcp:
        for nd in lab.nodes:
            log = daemon_log(nd)
            if not SESSION_UP_RE.search(log):
                problems.append(f"{nd.name} ({nd.label}): no session up in its log")
            fb = [ln for ln in log.splitlines() if FALLBACK_RE.search(ln)]
            if fb:
                problems.append(f"{nd.name} ({nd.label}) fell back to UDP:\n  " + "\n  ".join(fb[:5]))
    lab.check_daemons()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)
