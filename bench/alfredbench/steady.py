"""Section 7: steady state, nothing changing (issue 9's first target).

3 primaries + 30 secondaries on one clean VDE segment (MTU 1280), period
10 s, every node sets one 2,000 B record, the mesh settles (every primary
holds all 33); then, for the window, nothing changes. Measured over the
window, for Debian's alfred and for ours with -t (delta sync between our
daemons) in turn:
  - wire bytes per second: the sum over all 33 nodes of their mesh0's
    tx_bytes (every frame a node puts on the segment, headers included:
    announcements, syncs, TCP segments and acknowledgements);
  - CPU per primary (perf task-clock, all threads), mean of the three.
Targets: wire bytes at most 5 % of Debian's, CPU per primary at most 25 %.
"""

from __future__ import annotations

import random
import time

from .common import LinkParams, TaskClock, fmt, fmt_ratio, log, new_lab, parse_answer, ratio, request_raw, table
from .scale import _start_mesh, _stop_mesh, set_one_record_each

NODES = 33
SIZE = 2000
PERIOD = 10.0
BYTES_TARGET = 0.05
CPU_TARGET = 0.25


def _tx_bytes(lab) -> int:
    total = 0
    for nd in lab.nodes:
        cp = nd.exec(["cat", "/sys/class/net/mesh0/statistics/tx_bytes"], check=False)
        try:
            total += int(cp.stdout.decode().strip() or 0)
        except ValueError:
            pass
    return total


def primary_cpu_ms_per_s(cpu: dict[int, float], pids: dict[int, int], seconds: float) -> float | None:
    """Mean CPU of the 3 primaries (TaskClock seconds per pid) in ms per s."""
    wc = [cpu[pids[i]] for i in (1, 2, 3) if pids[i] in cpu]
    return round(sum(wc) / len(wc) * 1000 / seconds, 3) if wc else None


def _holds_all(nd, expected: dict) -> bool:
    try:
        got = parse_answer(request_raw(nd.sock, 64, 30.0), 64)
    except OSError:
        return False
    return all(got.get(m) == p for m, p in expected.items())


def run_one(cfg, bins, lab, variant: str, window: float) -> dict:
    binp, flags = (bins.ours, ["-t"]) if variant == "ours-tcp" else (bins.debian, [])
    res = {"variant": variant, "nodes": NODES, "size": SIZE, "period": PERIOD, "window_s": window,
           "flags": " ".join(flags)}
    try:
        pids = _start_mesh(lab, binp, flags, PERIOD, NODES, 4242)
        time.sleep(1.25 * PERIOD)
        expected = set_one_record_each(lab, random.Random(99), SIZE)
        t0 = time.monotonic()
        primaries = [lab.node(i) for i in (1, 2, 3)]
        while time.monotonic() - t0 < 6 * PERIOD and not all(_holds_all(p, expected) for p in primaries):
            time.sleep(0.5)
        res["settled_s"] = round(time.monotonic() - t0, 1)
        res["settled"] = all(_holds_all(p, expected) for p in primaries)
        # two more periods: every session has had its first full sync acknowledged
        time.sleep(2 * PERIOD)
        b0 = _tx_bytes(lab)
        tc = TaskClock([pids[i] for i in (1, 2, 3)]).start()
        t1 = time.monotonic()
        time.sleep(window)
        cpu = tc.stop()
        dt = time.monotonic() - t1
        res["bytes_per_s"] = round((_tx_bytes(lab) - b0) / dt, 1)
        res["primary_cpu_ms_per_s"] = primary_cpu_ms_per_s(cpu, pids, dt)
        res["still_held"] = all(_holds_all(p, expected) for p in primaries)
        lab.check_daemons()
    except Exception as e:  # noqa: BLE001 - recorded
        res["error"] = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
    finally:
        _stop_mesh(lab)
    return res


def run(cfg, bins) -> dict:
    window = cfg.steady_window
    out = []
    lab = new_lab(NODES, LinkParams(mtu=1280))
    try:
        for variant in ("debian", "ours-tcp"):
            log(f"section 7: {NODES} nodes, {variant}, nothing changing, {window:g} s window")
            r = run_one(cfg, bins, lab, variant, window)
            log("  " + (f"ERROR {r['error']}" if "error" in r else
                        f"{r['bytes_per_s']} B/s on the wire, CPU per primary {r['primary_cpu_ms_per_s']} ms/s, "
                        f"settled in {r['settled_s']} s, all held at the end: {r['still_held']}"))
            out.append(r)
    finally:
        lab.close()
    return {"runs": out, "config": {"window": window, "nodes": NODES, "size": SIZE, "period": PERIOD}}


def _verdict(ok, what: str) -> str:
    return "-" if ok is None else f"{'MET' if ok else 'MISSED'} ({what})"


def text(r: dict, dist: str) -> str:
    c = r["config"]
    out = [f"7. STEADY STATE (issue 9): {c['nodes']} nodes (3 primaries), one {c['size']} B record each, "
           f"-p {c['period']:g}, clean link, nothing changing; measured over {c['window']:g} s after the mesh "
           "settled (ours: -t, delta sync between our daemons)", dist]
    runs = {x["variant"]: x for x in r["runs"]}
    deb, our = runs.get("debian", {}), runs.get("ours-tcp", {})
    if "error" in deb or "error" in our:
        out.append("ERROR " + (deb.get("error") or our.get("error")))
        return "\n".join(x for x in out if x)
    rows = []
    rb = ratio(our.get("bytes_per_s"), deb.get("bytes_per_s"))
    rows.append(["wire bytes/s, all 33 nodes", f"{fmt(our.get('bytes_per_s'), 0)}", f"{fmt(deb.get('bytes_per_s'), 0)}",
                 fmt_ratio(rb), _verdict(None if rb is None else rb <= BYTES_TARGET, f"<= {BYTES_TARGET:.0%}"),
                 "mesh0 tx_bytes summed over the nodes, headers included"])
    rc = ratio(our.get("primary_cpu_ms_per_s"), deb.get("primary_cpu_ms_per_s"))
    rows.append(["CPU per primary, ms/s", f"{fmt(our.get('primary_cpu_ms_per_s'), 3)}",
                 f"{fmt(deb.get('primary_cpu_ms_per_s'), 3)}", fmt_ratio(rc),
                 _verdict(None if rc is None else rc <= CPU_TARGET, f"<= {CPU_TARGET:.0%}"),
                 "perf task-clock, mean of the 3 primaries"])
    rows.append(["settled / all held at the end", f"{our.get('settled')} / {our.get('still_held')}",
                 f"{deb.get('settled')} / {deb.get('still_held')}", "", "", "every primary holds all 33 records"])
    out.append(table(rows, ["row", "ours", "Debian", "ratio", "target", "notes"]))
    return "\n".join(x for x in out if x)
