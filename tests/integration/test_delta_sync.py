"""Delta sync (issue 9) in a mixed mesh: ours with -t (delta between them),
ours without -t, and Debian's alfred, converging and staying converged.

Six nodes on one clean VDE segment, `-p 1`:
    n1 ours -t primary     n2 ours -t primary     n3 Debian primary
    n4 ours -t secondary   n5 ours secondary      n6 Debian secondary

Every node sets a 1,000 B record; all six must hold all six. Then, with
nothing changing, the sessions between our -t daemons (n4 to its primary,
n1 and n2 to each other) must carry deltas: full syncs whose records the
peer already holds go as refreshes ("delta sync: 0 changed record(s) ...,
N refreshed" in the sender's -d log, "refresh of N record(s), N kept" in
the receiver's). Debian's primary keeps getting full syncs by UDP (it
would drop a refresh, and never sees one: it has no TCP). Then every node
updates its record and the mesh converges again; and it stays converged
for a few more periods, refreshed, not resent.

Last, every node sets about 1.5 KB of nodeinfo-like JSON instead: between
our -t daemons, push data that deflates goes packed (compression, hello
flag 0x08: "transaction N: P of Q packet(s) packed, X -> Y bytes" in the
sender's -d log), and all six nodes, Debian's among them, hold it as set.

Expiry through delta sync (a record gone from every node 600 s after its
source stopped, as with full sync) takes ten minutes of wall time: it is
checked in the simulator (DeltaSim.RecordsLiveWhileTheirSourceDoesAndExpire
AsWithFullSync), not here.
"""

from __future__ import annotations

import re
import time

from helpers import debian, ours

from alfredlab import wait_converged
from test_tcp_transport import daemon_log, fail, start_mesh, tcp_flags, udp_flags

PERIOD = 1
RTYPE = 64
SIZE = 1000
LIMIT = 4 * PERIOD + 2.0

PACKED_RE = re.compile(r"transaction \d+: (\d+) of (\d+) packet\(s\) packed, (\d+) -> (\d+) bytes")
DELTA_RE = re.compile(r"delta sync: (\d+) changed record\(s\) \(transaction \d+\), (\d+) refreshed")
KEPT_RE = re.compile(r"refresh of (\d+) record\(s\), (\d+) kept, (\d+) wanted")


def _payload(nd, tag: str) -> bytes:
    if tag == "json":
        return _json(nd)
    return (f"{nd.name} {tag} ".encode() * SIZE)[:SIZE]


def _json(nd) -> bytes:
    """About 1.5 KB of nodeinfo-like JSON, different on every node: it
    deflates 3-5x, as node data does (a repeated string would be too dense
    to pack: wire::kMaxPackRatio)."""
    n = int(nd.name[1:])
    neigh = ",".join(
        f'"02:00:00:{n:02x}:{i:02x}:{(n * 7 + i * 13) % 256:02x}":{{"tq":{(n * 31 + i * 17) % 255},'
        f'"lastseen":{(n + i) % 9}.{(i * 7) % 10},"ifname":"mesh0"}}' for i in range(16))
    doc = (f'{{"node_id":"0200000000{n:02x}","hostname":"ffxx-{nd.name}",'
           f'"software":{{"firmware":{{"base":"gluon-v2023.1","release":"2023.1.{n}"}}}},'
           f'"statistics":{{"uptime":{100000 + n * 3733},"clients":{{"total":{n % 7}}}}},'
           f'"neighbours":{{{neigh}}}}}')
    return doc.encode()


def _converge(lab, tag: str, what: str) -> None:
    expected = {nd.mac: _payload(nd, tag) for nd in lab.nodes}
    for nd in lab.nodes:
        nd.set(RTYPE, expected[nd.mac])
    t0 = time.monotonic()
    res = wait_converged(lab.nodes, {RTYPE: expected}, t0=t0, deadline_s=LIMIT + 10, interval=0.1)
    lab.check_daemons()
    print(f"{what}:\n{res.table()}\n{res.result_line(test=what)}")
    if not res.all_converged:
        fail(f"{what}: not every node holds every record within {LIMIT + 10:g} s", lab)


def test_mixed_mesh_with_delta_sync_converges_and_stays_converged(make_lab):
    lab = make_lab(6, link="vde")
    roles = [(ours(), True, tcp_flags()), (ours(), True, tcp_flags()), (debian(), True, []),
             (ours(), False, tcp_flags()), (ours(), False, udp_flags()), (debian(), False, [])]
    start_mesh(lab, roles, period=PERIOD)
    time.sleep(2 * PERIOD)
    n1, n2, n3, n4, n5, n6 = lab.nodes
    _converge(lab, "first", "all six records on all six nodes")

    # Nothing changes for a while: our -t daemons send deltas to each other.
    mark = {nd.name: len(daemon_log(nd)) for nd in (n1, n2, n4)}
    time.sleep(6 * PERIOD)
    lab.check_daemons()
    deltas = {nd.name: DELTA_RE.findall(daemon_log(nd)[mark[nd.name]:]) for nd in (n1, n2, n4)}
    kept = {nd.name: KEPT_RE.findall(daemon_log(nd)[mark[nd.name]:]) for nd in (n1, n2)}
    print("delta syncs in 6 periods:", {k: len(v) for k, v in deltas.items()},
          "refreshes taken:", {k: len(v) for k, v in kept.items()})
    for name, found in deltas.items():
        quiet = [d for d in found if d[0] == "0" and int(d[1]) > 0]
        if len(quiet) < 3:
            fail(f"{name} sent {len(quiet)} refresh-only delta syncs in 6 quiet periods "
                 f"(all its deltas: {found[:8]})", lab)
    # The secondary's own record is refreshed at its primary; the primaries'
    # first-hand records at each other. Nothing is wanted once settled (a
    # record named that the receiver set itself is neither kept nor wanted:
    # a primary syncs the other's own record back to it, as upstream does).
    for name, found in kept.items():
        if not any(int(k) > 0 and w == "0" for _, k, w in found[-4:]):
            fail(f"{name} took no refresh that kept records without wanting any: {found[:8]}", lab)

    # Updates still go through, to everyone, Debian's nodes included.
    _converge(lab, "second", "every record updated on all six nodes")
    # And nothing is lost in the periods after: what is refreshed stays.
    time.sleep(5 * PERIOD)
    expected = {nd.mac: _payload(nd, "second") for nd in lab.nodes}
    res = wait_converged(lab.nodes, {RTYPE: expected}, t0=time.monotonic(), deadline_s=3, interval=0.1)
    if not res.all_converged:
        fail("the mesh lost records in the quiet periods after the update", lab)
    lab.check_daemons()

    # JSON node data: packed between our -t daemons, as set everywhere.
    mark = {nd.name: len(daemon_log(nd)) for nd in (n1, n2, n4)}
    _converge(lab, "json", "JSON records on all six nodes")
    time.sleep(2 * PERIOD)
    packed = {nd.name: PACKED_RE.findall(daemon_log(nd)[mark[nd.name]:]) for nd in (n1, n2, n4)}
    print("packed transactions:", {k: v[:3] for k, v in packed.items()})
    for name, found in packed.items():
        if not found:
            fail(f"{name} packed no transaction of JSON records on its sessions", lab)
        if not any(int(b) * 2 < int(a) for _, _, a, b in found):
            fail(f"{name}'s packed transactions did not halve: {found[:4]}", lab)
    for nd in (n1, n2, n4):
        if "packed frame" in daemon_log(nd):
            fail(f"{nd.name} refused a packed frame", lab)
