"""Authenticated meshes (issue 11), UDP: --keyfile, --auth-mode, SIGHUP.

Seven nodes on one clean VDE segment, `-p 1`, ours without -t (sessions are
not authenticated yet, and --keyfile refuses -t):
    n1 ours primary, key K      n2 ours primary, key K     n3 ours secondary, key K
    n4 ours primary, no key     n5 ours primary, only the rotated-out key K0
    n6 Debian's primary         n7 no daemon: the attacker's tool
                                (tests/integration/auth_attack_tool.py)

Checked:
- the keyed nodes converge on each other's records, as an unkeyed mesh does;
- nothing of n4, n5, n6 or the tool gets in: their announcements (plain, or
  sealed with K0), the tool's plain pushes under spoofed MACs, captured
  sealed datagrams played back from the tool's address (MAC mismatch), from
  the sealer's own address to where they went (replay) and to another
  destination, n1's group announcements sent to n2 alone (bad tag: the
  destination is under the tag), and a flood of forged sealed datagrams
  carrying K's key id (bad tag). Each is refused with its reason
  in the receivers' -d log; honest updates still arrive during the flood;
- Debian's alfred and ours without a key drop the sealed datagrams (they
  hold none of the keyed records) and keep running;
- live rotation under SIGHUP (add the new key, make it the sending key,
  drop the old one) loses no update (records of 32,720 B: syncs at the
  sealed datagram's size limit), and a reload of a bad key file is
  refused with the old keys kept;
- transition: an unkeyed mesh moves to `enforce` node by node (restart
  with --auth-mode transition, then enforce) and holds every record at
  every step; in transition, a keyed node takes a sealed packet once (its
  plain copy is refused as "plain copy");
- start-up refusals: a key file readable by others, a missing one, and
  --keyfile with -t.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

from alfredlab import IPV4_GROUP
from helpers import debian, ours

from test_tcp_transport import daemon_log, fail, udp_flags

PERIOD = 1
RTYPE = 64
TOOL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "auth_attack_tool.py")
CONVERGE = 15.0
QUIET = 5.0  # how long what must not arrive is given to arrive


def _key() -> str:
    return os.urandom(32).hex()


def _keyfile(lab, name: str, keys: list[str], mode: int = 0o600) -> str:
    path = os.path.join(lab.dir, name)
    with open(path, "w") as f:
        f.write("# test keys\n" + "".join(k + "\n" for k in keys))
    os.chmod(path, mode)
    return path


def _keyed(path: str, mode: str | None = None) -> list[str]:
    return udp_flags() + ["--keyfile", path] + (["--auth-mode", mode] if mode else [])


def _wait_holding(nodes, expected: dict[str, bytes], lab, what: str, deadline: float = CONVERGE):
    """Until every node holds every record of `expected` (mac -> payload) as set."""
    end = time.monotonic() + deadline
    missing = {}
    while time.monotonic() < end:
        missing = {}
        for nd in nodes:
            got = nd.read(RTYPE)
            lack = [m for m, v in expected.items() if got.get(m) != v]
            if lack:
                missing[nd.name] = lack
        if not missing:
            return
        time.sleep(0.2)
    fail(f"{what}: not converged within {deadline:g} s; missing {missing}", lab)


def _tool(nd, *args, timeout: float = 60.0) -> str:
    cp = nd.exec([sys.executable, TOOL, *args], check=False, timeout=timeout)
    if cp.returncode != 0:
        raise AssertionError(f"attack tool {args[0]} failed: {cp.stderr.decode(errors='replace')}")
    return cp.stdout.decode()


def _refusals(nd, reason: str) -> int:
    return len(re.findall(r"auth: refused a datagram from .*: " + re.escape(reason), daemon_log(nd)))


STATS_RE = re.compile(r"auth: sealed (\d+), opened (\d+), plain taken (\d+); refused: (.*)")


def _stats(nd) -> dict[str, int]:
    m = STATS_RE.findall(daemon_log(nd))
    assert m, f"{nd.name}: no auth counters in its log\n{daemon_log(nd)[-1500:]}"
    sealed, opened, plain, refused = m[-1]
    out = {"sealed": int(sealed), "opened": int(opened), "plain taken": int(plain)}
    for part in refused.split(", "):
        name, _, n = part.rpartition(" ")
        out[name] = int(n)
    return out


def test_keyed_mesh_converges_and_refuses_every_attack(make_lab):
    lab = make_lab(7, link="vde")
    k, k0 = _key(), _key()
    kf = _keyfile(lab, "mesh.keys", [k])
    old = _keyfile(lab, "old.keys", [k0])
    n1, n2, n3, n4, n5, n6, n7 = lab.nodes
    n1.start(ours(), primary=True, period=PERIOD, flags=_keyed(kf), wait=False)
    n2.start(ours(), primary=True, period=PERIOD, flags=_keyed(kf), wait=False)
    n3.start(ours(), primary=False, period=PERIOD, flags=_keyed(kf), wait=False)
    n4.start(ours(), primary=True, period=PERIOD, flags=udp_flags(), wait=False)
    n5.start(ours(), primary=True, period=PERIOD, flags=_keyed(old), wait=False)
    n6.start(debian(), primary=True, period=PERIOD, wait=False)
    for nd in lab.nodes[:6]:
        nd.wait_ready()
    time.sleep(1.5 * PERIOD)
    keyed = [n1, n2, n3]
    for nd in lab.nodes[:6]:
        nd.set(RTYPE, f"record of {nd.name}".encode())
    honest = {nd.mac: f"record of {nd.name}".encode() for nd in keyed}
    _wait_holding(keyed, honest, lab, "keyed mesh")

    # The attacker's tool: captures sealed announcements and pushes of the
    # keyed nodes, then tries everything against the primaries.
    cap = os.path.join(lab.dir, "captured.json")
    print(_tool(n7, "capture", cap, "3"))
    spoof_prefix = f"02:a9:00:00:{lab.run_byte:02x}"
    for target in (n1, n2):
        print(_tool(n7, "inject", target.ll6, spoof_prefix, "8"))
        print(_tool(n7, "replay", cap, target.ll6))
    # Played back from the sealer's own address: n1's group datagrams to the
    # group again (seen counters), and to n2 alone (another destination).
    n7.exec(["ip", "-6", "addr", "add", f"{n1.ll6}/64", "dev", "mesh0", "nodad"])
    try:
        import json
        with open(cap) as f:
            from_n1 = [g for g in json.load(f) if g["from"] == n1.ll6]
        assert from_n1, "no sealed datagram of n1 captured"
        only = os.path.join(lab.dir, "from_n1.json")
        with open(only, "w") as f:
            json.dump(from_n1, f)
        print(_tool(n7, "replay", only, "ff02::1", n1.ll6))
        print(_tool(n7, "replay", only, n2.ll6, n1.ll6))
    finally:
        n7.exec(["ip", "-6", "addr", "del", f"{n1.ll6}/64", "dev", "mesh0"], check=False)
    # A flood of forged datagrams with K's key id while honest records change.
    flood = subprocess.Popen(["ip", "netns", "exec", n7.ns, sys.executable, TOOL, "flood", cap, n1.ll6,
                              "30000", n2.ll6], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for nd in keyed:
        nd.set(RTYPE, f"update of {nd.name}".encode())
    updated = {nd.mac: f"update of {nd.name}".encode() for nd in keyed}
    _wait_holding(keyed, updated, lab, "updates during a flood of forged datagrams", deadline=CONVERGE)
    out, err = flood.communicate(timeout=120)
    assert flood.returncode == 0, err.decode(errors="replace")
    time.sleep(QUIET)
    lab.check_daemons()

    # Nothing of the attackers' got in anywhere keyed.
    outsiders = {n4.mac, n5.mac, n6.mac}
    for nd in keyed:
        got = nd.read(RTYPE)
        foreign = sorted(m for m in got if m in outsiders or m.startswith(spoof_prefix))
        assert not foreign, f"{nd.name} took records from outside the keyed mesh: {foreign}"
        assert set(got) == set(updated), f"{nd.name} holds {sorted(got)}"
    # And the unkeyed nodes read none of the keyed ones.
    for nd, binary in ((n4, ours()), (n6, debian())):
        got = nd.read(RTYPE, bin=binary)
        assert not set(got) & set(updated), f"{nd.name} read keyed records: {sorted(got)}"
    # Each attack was refused for its reason.
    reasons = {
        "not authenticated": n1,  # n4's and Debian's announcements, the tool's pushes
        "no key matched": n1,     # n5's announcements under K0
        "MAC mismatch": n2,       # played back from the tool's address
        "replay": n2,             # played back from n1's own address to the group
        "bad tag": n1,            # the flood
    }
    counts = {r: _refusals(nd, r) for r, nd in reasons.items()}
    print("refusal log lines:", counts)
    for r, c in counts.items():
        assert c > 0, f"no '{r}' refusal in {reasons[r].name}'s log\n{lab.daemon_logs(30)}"
    # The counters (in the -d log every minute, and at exit).
    for nd in (n1, n2):
        rc = nd.stop(timeout=20)
        assert rc == 0, f"{nd.name} exited with {rc} on SIGTERM\n{daemon_log(nd)[-2000:]}"
        stats = _stats(nd)
        print(nd.name, stats)
        assert stats["opened"] > 0 and stats["plain taken"] == 0, stats
    assert _stats(n1)["bad tag"] >= 1000, "the flood's forgeries were not each refused"
    # n2 was not flooded: its bad tags are n1's group datagrams sent to it alone.
    assert _stats(n2)["bad tag"] >= len(from_n1), \
        f"{len(from_n1)} of n1's datagrams played to another destination, not each refused: {_stats(n2)}"


def test_keyed_mesh_over_ipv4_converges_with_every_destination_checked(make_lab):
    """-4: announcements to the IPv4 group, syncs and requests to IPv4
    unicast addresses (the sender's MAC from ARP). Every destination the
    seals were made for is the one they arrive at: no honest datagram fails
    its tag. Debian's -4 primary on the same link stays outside."""
    lab = make_lab(4, link="vde")
    kf = _keyfile(lab, "mesh.keys", [_key()])
    n1, n2, n3, n4 = lab.nodes
    for nd, primary in ((n1, True), (n2, True), (n3, False)):
        nd.start(ours(), primary=primary, period=PERIOD, ipv4=IPV4_GROUP, flags=_keyed(kf), wait=False)
    n4.start(debian(), primary=True, period=PERIOD, ipv4=IPV4_GROUP, wait=False)
    for nd in lab.nodes:
        nd.wait_ready()
    time.sleep(1.5 * PERIOD)
    keyed = [n1, n2, n3]
    for nd in lab.nodes:
        nd.set(RTYPE, f"ipv4 record of {nd.name}".encode())
    honest = {nd.mac: f"ipv4 record of {nd.name}".encode() for nd in keyed}
    _wait_holding(keyed, honest, lab, "keyed mesh over IPv4")
    time.sleep(QUIET)
    lab.check_daemons()
    for nd in keyed:
        got = nd.read(RTYPE)
        assert n4.mac not in got, f"{nd.name} took Debian's unauthenticated record"
    got = n4.read(RTYPE, bin=debian())
    assert not set(got) & set(honest), f"Debian's alfred read keyed records: {sorted(got)}"
    for nd in keyed:
        rc = nd.stop(timeout=20)
        assert rc == 0, f"{nd.name} exited with {rc} on SIGTERM\n{daemon_log(nd)[-2000:]}"
        st = _stats(nd)
        print(nd.name, st)
        assert st["opened"] > 0 and st["plain taken"] == 0, st
        # No replay either: each group datagram is taken once, by the group
        # socket (the unicast one, bound to any address, would get it too).
        assert st["bad tag"] == 0 and st["MAC mismatch"] == 0 and st["replay"] == 0, \
            f"{nd.name}: honest datagrams refused: {st}"
    assert _stats(n1)["not authenticated"] > 0, "Debian's plain announcements were not refused"


def test_live_key_rotation_by_sighup_loses_nothing(make_lab):
    lab = make_lab(3, link="vde")
    a, b = _key(), _key()
    paths = [_keyfile(lab, f"n{i}.keys", [a]) for i in (1, 2, 3)]
    roles = [True, True, False]
    for nd, path, primary in zip(lab.nodes, paths, roles):
        nd.start(ours(), primary=primary, period=PERIOD, flags=_keyed(path), wait=False)
    for nd in lab.nodes:
        nd.wait_ready()
    time.sleep(1.5 * PERIOD)
    steps = [("add the new key", [a, b]), ("send with the new key", [b, a]), ("drop the old key", [b])]
    for round_, (what, keys) in enumerate([("before", [a])] + steps):
        if round_:
            # Node by node, with a record change in between: the mesh is
            # never all on one file at once.
            for nd, path in zip(lab.nodes, paths):
                _keyfile(lab, os.path.basename(path), keys)
                nd.proc.send_signal(signal.SIGHUP)
                time.sleep(0.3)
        # Records of 32,720 bytes: two of them with their headers overfill a
        # sealed datagram by a few bytes, so full syncs are packed right at
        # the seal's limit (a limit of 65535 once had them refused by the
        # kernel, EMSGSIZE).
        payload = {nd.mac: f"{nd.name} at step {round_} ".encode().ljust(32720, b"x") for nd in lab.nodes}
        for nd in lab.nodes:
            nd.set(RTYPE, payload[nd.mac])
        expected = payload
        _wait_holding(lab.nodes, expected, lab, f"rotation step {round_} ({what})")
        lab.check_daemons()
    for nd in lab.nodes:
        log = daemon_log(nd)
        assert log.count("authenticated mesh:") == 4, f"{nd.name}: expected 4 key loads\n{log[-3000:]}"
    # A bad file on reload is refused, and the keys in use stay.
    n1 = lab.nodes[0]
    _keyfile(lab, os.path.basename(paths[0]), ["not-a-key"])
    n1.proc.send_signal(signal.SIGHUP)
    os.chmod(paths[1], 0o644)
    lab.nodes[1].proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert "key file reload refused, keeping the 1 key(s) in use" in daemon_log(n1)
    assert "chmod 600" in daemon_log(lab.nodes[1])
    for nd in lab.nodes:
        nd.set(RTYPE, f"{nd.name} after a bad reload".encode())
    _wait_holding(lab.nodes, {nd.mac: f"{nd.name} after a bad reload".encode() for nd in lab.nodes}, lab,
                  "after refused reloads")
    lab.check_daemons()


def test_transition_moves_an_unkeyed_mesh_to_enforce_node_by_node(make_lab):
    lab = make_lab(3, link="vde")
    kf = _keyfile(lab, "mesh.keys", [_key()])
    roles = [True, True, False]
    for nd, primary in zip(lab.nodes, roles):
        nd.start(ours(), primary=primary, period=PERIOD, flags=udp_flags(), wait=False)
    for nd in lab.nodes:
        nd.wait_ready()
    time.sleep(1.5 * PERIOD)
    step = 0

    def set_and_check(what: str):
        for nd in lab.nodes:
            nd.set(RTYPE, f"{nd.name} at step {step}".encode())
        _wait_holding(lab.nodes, {nd.mac: f"{nd.name} at step {step}".encode() for nd in lab.nodes}, lab,
                      what)

    set_and_check("unkeyed")
    for mode in ("transition", "enforce"):
        for nd, primary in zip(lab.nodes, roles):
            nd.stop()
            if mode == "enforce":
                # It ran in transition, as the other two did by the end:
                # their plain copies were refused, each packet taken once.
                st = _stats(nd)
                print(nd.name, "in transition:", st)
                assert st["plain copy"] > 0 and st["opened"] > 0, st
            nd.start(ours(), primary=primary, period=PERIOD, flags=_keyed(kf, mode))
            step += 1
            set_and_check(f"{nd.name} now in {mode}")
            lab.check_daemons()
    # Enforcing everywhere now: an unkeyed daemon is not heard (as a
    # primary, so that it announces itself and syncs what it holds).
    lab.nodes[2].stop()
    lab.nodes[2].start(ours(), primary=True, period=PERIOD, flags=udp_flags())
    lab.nodes[2].set(RTYPE, b"unkeyed again")
    time.sleep(QUIET)
    for nd in lab.nodes[:2]:
        assert nd.read(RTYPE).get(lab.nodes[2].mac) != b"unkeyed again", f"{nd.name} took an unkeyed push"
        assert _refusals(nd, "not authenticated") > 0


def test_start_up_refuses_bad_key_files_and_tcp(make_lab):
    lab = make_lab(1, link="vde")
    nd = lab.nodes[0]
    cases = [
        ("readable by others", _keyed(_keyfile(lab, "open.keys", [_key()], 0o644)), "chmod 600"),
        ("missing", _keyed(os.path.join(lab.dir, "absent.keys")), "No such file"),
        ("malformed", _keyed(_keyfile(lab, "bad.keys", ["zz"])), "not a 32-byte key"),
        ("with -t", _keyed(_keyfile(lab, "ok.keys", [_key()])) + ["-t"], "cannot be used with -t"),
        ("mode without key", udp_flags() + ["--auth-mode", "transition"], "--auth-mode needs --keyfile"),
        ("bad mode", _keyed(_keyfile(lab, "ok2.keys", [_key()])) + ["--auth-mode", "loose"], "bad --auth-mode"),
    ]
    for what, flags, message in cases:
        argv = [ours(), "-i", "mesh0", "-b", "none", "-m", "-u", nd.sock] + flags
        cp = nd.exec(argv, check=False, timeout=10)
        err = cp.stderr.decode(errors="replace") + cp.stdout.decode(errors="replace")
        assert cp.returncode != 0, f"{what}: the daemon started"
        assert message in err, f"{what}: {err!r}"
        assert not re.search(r"[0-9a-f]{64}", err), f"{what}: a key in the message"
