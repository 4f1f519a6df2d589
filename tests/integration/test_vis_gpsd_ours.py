"""Our batadv-vis and alfred-gpsd against Debian's (alfred 2023.0).

Binaries under test: batadv-vis and alfred-gpsd next to ALFRED_BIN (the
build directory), or ALFRED_VIS_BIN / ALFRED_GPSD_BIN.  The references are
Debian's, next to DEBIAN_ALFRED (default /usr/sbin), or DEBIAN_BATADV_VIS /
DEBIAN_ALFRED_GPSD; the tests fail if a reference is the program under test.

batadv-vis, on one node, against both daemons (ours, then Debian's), started
fresh as primaries: the same vis v1 records (type 1, version 1; several nodes,
secondary interfaces, clients, neighbours with a bad interface index or
quality 0, records of the wrong size or without interfaces, the most
interfaces and entries a record can carry) are pushed with their sources,
then our client and Debian's must print byte for byte the same in every
format (-f dot, json, jsondoc, no -f, and the prefixes upstream accepts),
with the same stderr and exit code.  The only difference allowed is the
version string jsondoc prints as "source_version": each program prints its
own (Debian: debian-2023.0-1), the one line where the texts may differ.
Then a record shorter than the vis header and one of the wrong version are
added (they end the answer early, where they fall in the daemon's order),
and the clients must still agree.  Server mode: batman-adv is not there, so
both servers publish the empty record (8 zero bytes); ours must publish the
same bytes as Debian's (checked with recorded netlink replies in
tests/unit/vis_server_test.cpp for the rest).

Beside the daemons, a stand-in daemon (a unix socket written by this test)
serves both clients the same random answers, valid and malformed (records
running past their packet, packets cut short, other types, status packets),
which a real daemon never sends; the outputs must be identical too.

alfred-gpsd, on our daemon: a real gpsd run by gpsfake from
data/munich.nmea (a fixed position) in the node's namespace.  Our server
(-s -g localhost:PORT) is read by Debian's client and Debian's server by ours:
both must report the log's position (lat, lon, alt) for the node, and both
clients must print the same bytes for the same stored record.  Before gpsd
runs, both servers publish the same initial record.  The same with -l.
"""

from __future__ import annotations

import functools
import json
import os
import random
import re
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

from helpers import PERIOD, debian, flags_for, ours, show, text_diff

from alfredlab import protocol
from alfredlab.util import mac_bytes

HERE = os.path.dirname(os.path.abspath(__file__))
NMEA = os.path.join(HERE, "data", "munich.nmea")
DEB_VIS = os.environ.get("DEBIAN_BATADV_VIS") or os.path.join(os.path.dirname(debian()), "batadv-vis")
DEB_GPSD = os.environ.get("DEBIAN_ALFRED_GPSD") or os.path.join(os.path.dirname(debian()), "alfred-gpsd")
GPSD_PORT = 29470
ENV = {**os.environ, "PATH": os.environ.get("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin"}


def our_vis() -> str:
    return os.environ.get("ALFRED_VIS_BIN") or os.path.join(os.path.dirname(ours()), "batadv-vis")


def our_gpsd() -> str:
    return os.environ.get("ALFRED_GPSD_BIN") or os.path.join(os.path.dirname(ours()), "alfred-gpsd")


@pytest.fixture(scope="module", autouse=True)
def tools_present():
    missing = [b for b in (our_vis(), our_gpsd(), DEB_VIS, DEB_GPSD, "/usr/bin/gpsfake", "/usr/sbin/gpsd")
               if not os.access(b, os.X_OK)]
    if missing:
        pytest.fail("missing: " + ", ".join(missing)
                    + " (build batadv-vis and alfred-gpsd; apt-get install alfred gpsd gpsd-clients)",
                    pytrace=False)
    same = [b for b, ref in ((our_vis(), DEB_VIS), (our_gpsd(), DEB_GPSD)) if os.path.samefile(b, ref)]
    if same:
        pytest.fail(f"{', '.join(same)}: the program under test is its own reference; point "
                    "DEBIAN_ALFRED (or DEBIAN_BATADV_VIS / DEBIAN_ALFRED_GPSD) at Debian's", pytrace=False)


def run(argv, ns=None, timeout=15):
    cmd = (["ip", "netns", "exec", ns] if ns else []) + list(argv)
    cp = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                        stdin=subprocess.DEVNULL, env=ENV)
    return cp.returncode, cp.stdout, cp.stderr


@functools.lru_cache(maxsize=None)
def version_of(binary: str) -> bytes:
    """What `binary -v` says after the program name (Debian: debian-2023.0-1)."""
    rc, so, _ = run([binary, "-v"])
    first = so.split(b"\n")[0]
    return first.split(b" ", 1)[1] if b" " in first else b""


def same_output(deb, got, label: str, problems: list[str]) -> None:
    """deb, got: (rc, stdout, stderr). Equal, but for jsondoc's source_version line."""
    want = (deb[0], deb[1].replace(b'"source_version" : "' + version_of(DEB_VIS) + b'"',
                                   b'"source_version" : "' + version_of(our_vis()) + b'"'), deb[2])
    if want != got:
        problems.append(f"{label}: exit {deb[0]} (debian) vs {got[0]} (ours)\n"
                        + text_diff(want[1], got[1], "debian", "ours")
                        + f"\nstderr debian {deb[2]!r}\nstderr ours   {got[2]!r}")


# --- vis records -------------------------------------------------------------------------

def M(*b) -> bytes:
    return bytes(b)


def vis(ifaces, entries, mac=b"\0" * 6) -> bytes:
    return protocol.vis_v1_payload(mac, ifaces, entries)


def node_mac(i: int) -> bytes:
    return M(0x02, 0x5e, 0x00, 0x00, i >> 8, i & 0xff)


def vis_records() -> list[tuple[bytes, bytes]]:
    """(source, payload) of the first phase."""
    rng = random.Random(20261201)
    recs = []
    ifs = [M(0x02, 0x10, 0, 0, 0, k) for k in range(1, 5)]
    nb = [M(0x02, 0x20, 0, 0, 0, k) for k in range(1, 9)]
    cl = [M(0x02, 0x40, 0, 0, 0, k) for k in range(1, 5)]
    # a node with two interfaces, neighbours on both, clients
    recs.append(vis(ifs[:2], [(nb[0], 0, 230), (nb[1], 1, 255), (cl[0], 255, 0), (nb[2], 0, 1),
                              (cl[1], 255, 0), (nb[3], 1, 128)]))
    # one interface, one neighbour; three interfaces, no entries
    recs.append(vis(ifs[2:3], [(nb[4], 0, 77)]))
    recs.append(vis(ifs[1:4], []))
    # complaints: bad interface index, quality 0 (stderr), a client only
    recs.append(vis(ifs[:1], [(nb[5], 3, 90), (nb[6], 0, 0), (cl[2], 255, 0)]))
    recs.append(vis(ifs[:1], [(cl[3], 255, 0)]))
    # skipped: no interfaces; a size that does not match the counts
    recs.append(vis([], [(nb[7], 0, 100)]))
    recs.append(vis(ifs[:2], [(nb[0], 0, 50)]) + b"\0")
    recs.append(vis(ifs[:2], [(nb[0], 0, 50)])[:-3])
    # the most a record can carry (upstream's server: 254 interfaces, 255 entries)
    recs.append(vis([M(2, 0x11, 0, 0, 0, k) for k in range(254)],
                    [(M(2, 0x21, 0, 0, 0, k), k % 254 if k % 5 else 255, (k * 37) % 256)
                     for k in range(255)]))
    # random nodes
    for _ in range(12):
        ni = rng.choice([1, 1, 2, 3])
        ents = [(M(2, 0x22, 0, 0, rng.randrange(4), rng.randrange(256)),
                 rng.choice([0, 0, 1, 2, 255, 7]), rng.choice([rng.randrange(1, 256), 0, 255]))
                for _ in range(rng.randrange(0, 12))]
        recs.append(vis([M(2, 0x12, 0, 0, rng.randrange(4), rng.randrange(256)) for _ in range(ni)], ents))
    return [(node_mac(i + 1), p) for i, p in enumerate(recs)]


VIS_FORMATS = [[], ["-f", "dot"], ["-f", "json"], ["-f", "jsondoc"], ["-f", "dotty"],
               ["-f", "jsonx"], ["--format=jsondoc"]]


def compare_vis_clients(node, label: str, problems: list[str]) -> None:
    for fmt in VIS_FORMATS:
        deb = run([DEB_VIS, "-u", node.sock] + fmt, ns=node.ns)
        got = run([our_vis(), "-u", node.sock] + fmt, ns=node.ns)
        same_output(deb, got, f"{label}, batadv-vis {' '.join(fmt) or '(no -f)'}", problems)


def wait_records(node, rtype: int, n: int, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        got = protocol.request(node.sock, rtype)
        if len(got) >= n or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


@pytest.fixture(scope="module")
def node(module_lab_factory):
    return module_lab_factory(1, link="veth").node(1)


@pytest.mark.parametrize("daemon", ["ours", "debian"])
def test_batadv_vis_client_identical(node, daemon):
    binary = ours() if daemon == "ours" else debian()
    node.stop()
    node.start(binary, primary=True, period=PERIOD, flags=flags_for(binary))
    problems: list[str] = []

    compare_vis_clients(node, f"{daemon}'s daemon, no records", problems)

    recs = vis_records()
    for src, payload in recs:
        protocol.push(node.sock, 1, payload, version=1, source=src)
    protocol.push(node.sock, 1, vis([M(2, 0x10, 0, 0, 0, 9)], [(M(2, 0x20, 0, 0, 0, 9), 0, 10)]), version=1)
    held = wait_records(node, 1, len(recs) + 1)
    if len(held) != len(recs) + 1:
        problems.append(f"daemon holds {len(held)} of {len(recs) + 1} vis records")
    compare_vis_clients(node, f"{daemon}'s daemon, {len(held)} records", problems)
    # The output carries what was pushed (a guard on the test itself).
    rc, so, se = run([our_vis(), "-u", node.sock, "-f", "json"], ns=node.ns)
    for m in ("02:10:00:00:00:01", "02:20:00:00:00:05", "02:40:00:00:00:04", "02:11:00:00:00:fd"):
        if m.encode() not in so:
            problems.append(f"our batadv-vis -f json lacks {m}:\n{show(so)}")
    if b"ERROR: bad ifindex ...\n" not in se or b"ERROR: quality = 0?\n" not in se:
        problems.append(f"our batadv-vis stderr lacks the complaints: {se!r}")

    # Records that end the answer early, wherever the daemon puts them.
    protocol.push(node.sock, 1, b"\1\2\3", version=1, source=node_mac(0x101))
    protocol.push(node.sock, 1, vis([M(2, 0x10, 0, 0, 0, 8)], []), version=0, source=node_mac(0x102))
    wait_records(node, 1, len(recs) + 3)
    compare_vis_clients(node, f"{daemon}'s daemon, with a short record and a version 0 one", problems)

    # No daemon at all.
    same_output(run([DEB_VIS, "-u", node.sock + ".none"]), run([our_vis(), "-u", node.sock + ".none"]),
                "no daemon", problems)
    node.check()
    if problems:
        pytest.fail("\n\n".join(problems) + "\n\n--- daemon log ---\n" + node.logs(30), pytrace=False)


def test_batadv_vis_server_without_batman_adv(node):
    """Both servers publish the same (empty) record when batman-adv is absent."""
    node.stop()
    node.start(ours(), primary=True, period=PERIOD, flags=flags_for(ours()))
    got = {}
    for who, binary in (("debian", DEB_VIS), ("ours", our_vis())):
        protocol.push(node.sock, 1, b"placeholder-to-be-replaced", version=0)
        srv = subprocess.Popen(["ip", "netns", "exec", node.ns, binary, "-s", "-i", "bat0", "-u", node.sock],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        try:
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline:
                held = protocol.request(node.sock, 1)
                if held and held[0][1] == 1:
                    break
                time.sleep(0.05)
            got[who] = (held, srv.poll())
        finally:
            os.killpg(srv.pid, signal.SIGTERM)
            _, err = srv.communicate(timeout=5)
        got[who] += (err,)
    want = [(node.mac, 1, bytes(8))]
    assert got["debian"][0] == want, got  # guards the test
    assert got["ours"][0] == got["debian"][0], got
    assert got["ours"][1] is None, "our batadv-vis -s exited"
    assert got["ours"][2] == got["debian"][2], got
    for fmt in VIS_FORMATS[:4]:
        problems: list[str] = []
        same_output(run([DEB_VIS, "-u", node.sock] + fmt, ns=node.ns),
                    run([our_vis(), "-u", node.sock] + fmt, ns=node.ns), "empty record", problems)
        assert not problems, problems
    node.check()


# --- a stand-in daemon ----------------------------------------------------------------------

def push_pk(rtype: int, ver: int, data: bytes, src: bytes) -> bytes:
    rec = src + struct.pack("!BBH", rtype, ver, len(data)) + data
    body = struct.pack("!HH", 1, 0) + rec
    return struct.pack("!BBH", 0, 0, len(body)) + body


def serve(path: str, answer: bytes):
    if os.path.exists(path):
        os.unlink(path)
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(path)
    ls.listen(1)
    ls.settimeout(10)

    def main():
        try:
            c, _ = ls.accept()
            c.settimeout(10)
            c.recv(64)
            c.sendall(answer)
            c.close()
        except OSError:
            pass
        finally:
            ls.close()

    t = threading.Thread(target=main, daemon=True)
    t.start()
    return t


def random_answer(rng: random.Random, kind: str) -> bytes:
    def rmac():
        return bytes([rng.choice([2, 0x12]), 0, 0, 0, rng.randrange(4), rng.randrange(256)])

    def rvis():
        ents = [(rmac(), rng.choice([0, 1, 2, 3, 255, 7]), rng.choice([0, 1, 100, 255, rng.randrange(256)]))
                for _ in range(rng.choice([0, 1, 2, 4, 9]))]
        d = vis([rmac() for _ in range(rng.choice([0, 1, 1, 2, 3, 5]))], ents)
        k = rng.random()
        if k < 0.05:
            d = d[:rng.randrange(len(d) + 1)]
        elif k < 0.1:
            d += bytes(rng.randrange(1, 10))
        return d

    def rgps():
        t = rng.choice([b'{"class":"TPV","mode":3,"lat":1.5}', b"x" * rng.randrange(50), b'{"a":"\\u00e9"}'])
        k = rng.random()
        ln = len(t) + 1 + (rng.choice([-1, 1, 5]) if k < 0.1 else 0)
        d = struct.pack("!I", ln) + t + b"\0"
        if k > 0.9:
            d = d[:-1]
        elif k > 0.85:
            d = d[:rng.randrange(6)]
        return d

    out = b""
    for _ in range(rng.randrange(7)):
        pk = push_pk(1 if kind == "vis" else 2, 1, rvis() if kind == "vis" else rgps(), rmac())
        k = rng.random()
        if k < 0.04:
            pk = push_pk(rng.choice([1, 2, 3]), rng.choice([0, 1, 2]), rvis(), rmac())
        elif k < 0.07:
            pk = bytes([3, 0, 0, 4, 0, 1, 0, 1])  # txend
        elif k < 0.10:
            pk = pk[:rng.randrange(len(pk))]  # the stream ends inside a packet
        elif k < 0.13:  # a record claiming more than its packet holds
            pk = pk[:16] + bytes([rng.randrange(256), rng.randrange(256)]) + pk[18:]
        elif k < 0.15:
            pk = bytes([0, 0, 0, rng.randrange(14)]) + bytes(rng.randrange(14))
        out += pk
    return out


def test_clients_identical_on_malformed_answers(tmp_path):
    rng = random.Random(int(os.environ.get("ALFRED_VIS_DIFF_SEED", "1")))
    cases = int(os.environ.get("ALFRED_VIS_DIFF_CASES", "150"))
    path = str(tmp_path / "standin.sock")
    problems: list[str] = []
    for i in range(cases):
        kind = "vis" if i % 3 else "gpsd"
        answer = random_answer(rng, kind)
        if kind == "vis":
            args = [["-f", "dot"], ["-f", "json"], ["-f", "jsondoc"]][i % 3]
            pair = (DEB_VIS, our_vis())
        else:
            args, pair = [], (DEB_GPSD, our_gpsd())
        outs = []
        for binary in pair:
            t = serve(path, answer)
            outs.append(run([binary, "-u", path] + args))
            t.join(10)
        before = len(problems)
        same_output(outs[0], outs[1], f"case {i} ({kind} {' '.join(args)}), answer {answer.hex()}", problems)
        if len(problems) > before and len(problems) >= 3:
            break
    assert not problems, "\n\n".join(problems)


# --- alfred-gpsd --------------------------------------------------------------------------------

LAT, LON, ALT = 48.137156667, 11.576130000, 519.4


class Gpsfake:
    """gpsd fed by gpsfake from the NMEA log, looping, in the node's namespace."""

    def __init__(self, node, port: int):
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", node.ns, "gpsfake", "-q", "-c", "0.1", "-P", str(port), NMEA],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, env=ENV)

    def stop(self) -> bytes:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            _, err = self.proc.communicate()
        return err


class Server:
    def __init__(self, node, binary: str, args: list[str]):
        self.proc = subprocess.Popen(["ip", "netns", "exec", node.ns, binary, "-s", "-u", node.sock] + args,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)

    def stop(self):
        alive = self.proc.poll() is None
        if alive:
            os.killpg(self.proc.pid, signal.SIGTERM)
        out, err = self.proc.communicate(timeout=5)
        return alive, out, err


def positions(out: bytes):
    """alfred-gpsd's client output -> [(source, tpv dict)]; None if it is not JSON."""
    try:
        return [(e["source"], e["tpv"]) for e in json.loads(out)]
    except (ValueError, KeyError, TypeError):
        return None


def wait_position(node, client: str, pred, timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        rc, so, se = run([client, "-u", node.sock], ns=node.ns)
        pos = positions(so)
        if rc == 0 and pos and pred(pos):
            return rc, so, se, pos
        if time.monotonic() > deadline:
            return rc, so, se, pos
        time.sleep(0.25)


def near(a, b, eps=1e-6):
    return a is not None and abs(a - b) < eps


def fix_ok(pos, mac):
    return len(pos) == 1 and pos[0][0] == mac and pos[0][1].get("mode") == 3 and \
        near(pos[0][1].get("lat"), LAT) and near(pos[0][1].get("lon"), LON) and near(pos[0][1].get("alt"), ALT, 1e-3)


def gpsd_round(node, server_bin: str, client_bin: str, args: list[str], pred, problems, label: str):
    """One server, one client: the position must arrive; then both clients
    print the same bytes for the stored record."""
    srv = Server(node, server_bin, args)
    try:
        rc, so, se, pos = wait_position(node, client_bin, pred, 15)
    finally:
        alive, s_out, s_err = srv.stop()
    if not (rc == 0 and pos and pred(pos)):
        problems.append(f"{label}: {client_bin} did not see the position: exit {rc}\n{show(so)}\n{show(se)}\n"
                        f"server alive {alive}, stdout {s_out!r}, stderr {s_err!r}")
        return None
    if not alive:
        problems.append(f"{label}: server {server_bin} exited: {s_err!r}")
    # The record stays in the daemon once its server is gone.
    same_output(run([DEB_GPSD, "-u", node.sock], ns=node.ns), run([our_gpsd(), "-u", node.sock], ns=node.ns),
                f"{label}: clients on the same record", problems)
    return pos


def test_alfred_gpsd_with_gpsfake(node):
    node.stop()
    node.start(ours(), primary=True, period=PERIOD, flags=flags_for(ours()))
    problems: list[str] = []
    spec = ["-g", f"localhost:{GPSD_PORT}"]

    # No gpsd yet: both servers publish the initial report.
    init = {}
    for who, binary in (("debian", DEB_GPSD), ("ours", our_gpsd())):
        protocol.push(node.sock, 2, b"placeholder", version=0)
        srv = Server(node, binary, spec)
        try:
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline:
                held = protocol.request(node.sock, 2)
                if held and held[0][1] == 1:
                    break
                time.sleep(0.05)
        finally:
            alive, _, err = srv.stop()
        init[who] = (held, alive, err)
    want_init = [(node.mac, 1, struct.pack("!I", 25) + b'{"class":"TPV","mode":0}\0')]
    if init["debian"][0] != want_init:
        problems.append(f"Debian's alfred-gpsd -s published {init['debian']!r}, expected {want_init!r}")
    if init["ours"] != init["debian"]:
        problems.append(f"initial record: ours {init['ours']!r}\ndebian {init['debian']!r}")

    fake = Gpsfake(node, GPSD_PORT)
    try:
        mac = node.mac
        got_ours = gpsd_round(node, our_gpsd(), DEB_GPSD, spec, lambda p: fix_ok(p, mac), problems,
                              "our server, Debian's client")
        protocol.push(node.sock, 2, b"placeholder", version=0)  # the next round must replace it
        got_deb = gpsd_round(node, DEB_GPSD, our_gpsd(), spec, lambda p: fix_ok(p, mac), problems,
                             "Debian's server, our client")
    finally:
        err = fake.stop()
    if got_ours and got_deb:
        a, b = got_ours[0][1], got_deb[0][1]
        for key in ("class", "device", "mode", "lat", "lon", "alt", "altHAE", "altMSL"):
            if a.get(key) != b.get(key):
                problems.append(f"position differs in {key}: ours {a.get(key)!r}, debian {b.get(key)!r}")
    if problems:
        pytest.fail("\n\n".join(problems) + f"\n\ngpsfake stderr: {err!r}\n--- daemon log ---\n"
                    + node.logs(30), pytrace=False)
    node.check()


def test_alfred_gpsd_static_location(node):
    node.stop()
    node.start(ours(), primary=True, period=PERIOD, flags=flags_for(ours()))
    problems: list[str] = []
    mac = node.mac
    loc = ["-l", "48.1,11.5,500"]

    def static_ok(p):
        return len(p) == 1 and p[0][0] == mac and p[0][1].get("device") == "command line" and \
            p[0][1].get("lat") == 48.099998 and p[0][1].get("lon") == 11.5 and p[0][1].get("alt") == 500.0

    got_ours = gpsd_round(node, our_gpsd(), DEB_GPSD, loc, static_ok, problems, "-l: our server, Debian's client")
    protocol.push(node.sock, 2, b"placeholder", version=0)
    got_deb = gpsd_round(node, DEB_GPSD, our_gpsd(), loc, static_ok, problems, "-l: Debian's server, our client")
    if got_ours and got_deb:
        # Everything but the time stamp, which is the publishing time.
        a, b = dict(got_ours[0][1]), dict(got_deb[0][1])
        ta, tb = a.pop("time", ""), b.pop("time", "")
        if a != b:
            problems.append(f"-l reports differ: ours {a!r}, debian {b!r}")
        iso = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        if not iso.match(ta) or not iso.match(tb):
            problems.append(f"time stamps: ours {ta!r}, debian {tb!r}")
    if problems:
        pytest.fail("\n\n".join(problems) + "\n--- daemon log ---\n" + node.logs(30), pytrace=False)
    node.check()


def test_alfred_gpsd_and_batadv_vis_options():
    """Usage, version lines, option errors and exit codes match Debian's."""
    problems: list[str] = []
    cases = [(DEB_VIS, our_vis(), a) for a in (["-h"], ["--help"], ["-f", "xml"], ["-x"], ["-f"])] + \
            [(DEB_GPSD, our_gpsd(), a) for a in (["-h"], ["-l", "100,0,0"], ["-l", "0,200,0"],
                                                  ["-l", "0,0,9001"], ["-l", "abc"], ["-l", "1,2"],
                                                  ["-x"], ["-s", "-l", "1,2"], ["-g"])]
    for deb, mine, args in cases:
        d = run([deb] + args)
        o = run([mine] + args)
        # getopt names the program as invoked
        d = (d[0], d[1], d[2].replace(deb.encode(), b"PROG"))
        o = (o[0], o[1], o[2].replace(mine.encode(), b"PROG"))
        same_output(d, o, f"{os.path.basename(deb)} {' '.join(args)}", problems)
    for deb, mine, what in ((DEB_VIS, our_vis(), b"VIS alfred client\n"),
                            (DEB_GPSD, our_gpsd(), b"GPSD alfred client\n")):
        d, o = run([deb, "-v"]), run([mine, "-v"])
        if d[0] != o[0] or not o[1].startswith(mine.encode() + b" ") or not o[1].endswith(b"\n" + what):
            problems.append(f"{mine} -v: {o!r} (debian {d!r})")
    assert not problems, "\n\n".join(problems)
