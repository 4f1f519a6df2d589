"""Debian's other alfred clients (alfred-gpsd, batadv-vis) against our daemon.

One node (veth, no peers).  For each daemon (ours, then Debian's as the
reference), started fresh as `-i mesh0 -b none -m -u SOCK -p 1`:

* alfred-gpsd -s -l 48.1,11.5,500 -u SOCK   (static-location server mode,
  pushes type-2 records), then `alfred-gpsd -u SOCK` must list the node's
  mac with that location; outputs of both daemons must match apart from the
  TPV "time" stamp.
* batadv-vis' server mode needs batman-adv, so the test writes a vis v1
  record (type 1, version 1) itself with a raw unix-socket push_data packet
  (source mac all zero = "daemon fills in its own").  `batadv-vis -f json`,
  `-f jsondoc` and `-f dot` must print the same as against Debian's daemon
  and contain the injected macs.
"""

from __future__ import annotations

import re
import subprocess
import time

import pytest

from helpers import PERIOD, debian, flags_for, ours, show, text_diff

from alfredlab import protocol
from alfredlab.util import mac_bytes

GPSD = "/usr/sbin/alfred-gpsd"
VIS = "/usr/sbin/batadv-vis"

VIS_PRIMARY = "02:a1:00:00:00:aa"
VIS_SECOND_IF = "02:a1:00:00:00:ab"
VIS_NEIGHBOURS = [("02:a1:00:00:00:bb", 0, 200), ("02:a1:00:00:00:cc", 1, 150),
                  ("02:a1:00:00:00:dd", 0, 255), ("02:a1:00:00:00:ee", 1, 0)]


def vis_payload() -> bytes:
    return protocol.vis_v1_payload(mac_bytes(VIS_PRIMARY),
                                   [mac_bytes(VIS_PRIMARY), mac_bytes(VIS_SECOND_IF)],
                                   [(mac_bytes(m), i, q) for m, i, q in VIS_NEIGHBOURS])


def _run(node, argv, timeout=15):
    cp = subprocess.run(["ip", "netns", "exec", node.ns] + argv, stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, timeout=timeout, stdin=subprocess.DEVNULL)
    return cp.returncode, cp.stdout, cp.stderr


def exercise(node, daemon: str) -> dict:
    node.stop()
    node.start(daemon, primary=True, period=PERIOD, flags=flags_for(daemon))
    out: dict = {}

    # --- alfred-gpsd
    srv = subprocess.Popen(["ip", "netns", "exec", node.ns, GPSD, "-s", "-l", "48.1,11.5,500",
                            "-u", node.sock], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            rc, so, se = _run(node, [GPSD, "-u", node.sock])
            if b'"lat":48.099998' in so or time.monotonic() > deadline:
                break
            if srv.poll() is not None:
                break
            time.sleep(0.2)
        out["gpsd_client"] = (rc, so, se)
        out["gpsd_server_alive"] = srv.poll() is None
    finally:
        srv.terminate()
        try:
            s_out, s_err = srv.communicate(timeout=3)
        except subprocess.TimeoutExpired:
            srv.kill()
            s_out, s_err = srv.communicate()
        out["gpsd_server_output"] = (s_out, s_err)
    node.check()

    # --- batadv-vis, fed by a raw push of a vis v1 record
    rc, so, se = _run(node, [VIS, "-u", node.sock, "-f", "json"])
    out["vis_json_empty"] = (rc, so, se)
    protocol.push(node.sock, 1, vis_payload(), version=1)
    time.sleep(0.2)
    out["raw_type1"] = protocol.request(node.sock, 1)
    for fmt in ("json", "jsondoc", "dot"):
        out[f"vis_{fmt}"] = _run(node, [VIS, "-u", node.sock, "-f", fmt])
    out["vis_default"] = _run(node, [VIS, "-u", node.sock])
    node.check()
    out["log"] = node.logs(30)
    node.stop()
    return out


_TIME = re.compile(rb'"time":"[^"]*"')


@pytest.fixture(scope="module")
def vis_node(module_lab_factory):
    return module_lab_factory(1, link="veth").node(1)


def test_batadv_vis_and_gpsd_clients(vis_node):
    node = vis_node
    ref = exercise(node, debian())
    got = exercise(node, ours())
    mac = node.mac.encode()
    problems = []

    # sanity of the reference run (guards the test itself)
    rc, so, se = ref["gpsd_client"]
    assert rc == 0 and b'"lat":48.099998' in so and mac in so, (rc, so, se, ref["log"])

    # gpsd: our daemon must hand the location back
    rc, so, se = got["gpsd_client"]
    if not (rc == 0 and mac in so and b'"lat":48.099998,"lon":11.500000,"alt":500.000000' in so):
        problems.append(f"alfred-gpsd client against our daemon: exit {rc}\nstdout: {show(so)}\n"
                        f"stderr: {show(se)}\n(server alive: {got['gpsd_server_alive']}, server output: "
                        f"{got['gpsd_server_output']})")
    if _TIME.sub(b'"time":"T"', so) != _TIME.sub(b'"time":"T"', ref["gpsd_client"][1]) or \
            (rc, se) != (ref["gpsd_client"][0], ref["gpsd_client"][2]):
        problems.append("alfred-gpsd output differs from Debian's daemon (time stamp ignored):\n"
                        + text_diff(ref["gpsd_client"][1], so, "debian", "ours")
                        + f"\nstderr debian {ref['gpsd_client'][2]!r} ours {se!r}")

    # raw view of the injected record: source filled in with the daemon's mac
    want_raw = [(node.mac, 1, vis_payload())]
    if got["raw_type1"] != want_raw:
        problems.append(f"raw request for type 1: expected {want_raw!r}\ngot {got['raw_type1']!r}")

    for key in ("vis_json_empty", "vis_json", "vis_jsondoc", "vis_dot", "vis_default"):
        r, g = ref[key], got[key]
        if r != g:
            problems.append(f"batadv-vis {key}: exit {r[0]} vs {g[0]}\n"
                            + text_diff(r[1], g[1], "debian", "ours")
                            + f"\nstderr debian {r[2]!r}\nstderr ours   {g[2]!r}")
    for key in ("vis_json", "vis_dot"):
        so = got[key][1]
        for m in [VIS_PRIMARY, VIS_SECOND_IF] + [n[0] for n in VIS_NEIGHBOURS[:3]]:
            if m.encode() not in so:
                problems.append(f"batadv-vis {key} output lacks injected mac {m}:\n{show(so)}")
    if problems:
        pytest.fail("\n\n".join(problems) + "\n\n--- our daemon's log ---\n" + got["log"], pytrace=False)
