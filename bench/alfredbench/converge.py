"""Section 1: convergence of a 300 KB data set between two primaries under
frame loss (Debian's alfred over UDP, ours without -t, ours with -t), plus the
link's capacity and round trip for the lower bound.

One cell = one 2-node lab (MTU 1280, `--loss` on every receiver's downlink,
nothing else), two primaries A (n1) and B (n2) of the same variant, -p PERIOD.

  * B starts first, A one second later, so B's first announcement reaches A
    before A's first sync tick.
  * A marker record (type 65, 6 bytes, one unfragmented frame, set with a zero
    source on A) is polled on B: once B has it, A knows B.
  * The data set (RECORDS records of type 64, SIZE bytes each, each pushed raw
    over A's unix socket with its own source MAC, one record per connection)
    is loaded PHASE seconds after one of A's sync ticks, i.e. right after a
    tick: the next sync is ~PERIOD - PHASE later (near the worst case for
    "time from load").
  * t_load = when the last push returned.  B is polled (raw request, read to
    EOF, compare payloads) every INTERVAL s until it holds all records or
    DEADLINE s passed.
  * A's sync ticks are read from its stdout ("[sec.nsec] announce primary ...",
    CLOCK_MONOTONIC, printed by both daemons; Debian's through `stdbuf -oL`):
    "syncs" = ticks of A in (t_load, t_converged]; 0 means B had everything
    before A's next periodic sync (our primaries forward fresh first-hand
    data promptly, ~100 ms after a change); otherwise "from first sync" =
    t_converged - first tick of A after t_load, the phase-independent cost.  Our daemons also run with
    -d: B's "transaction ... complete" line gives the exact completion time,
    A's lines count TCP pushes / fallbacks, B's "timed out" lines count
    syncs that were lost (incomplete transactions).
"""

from __future__ import annotations

import random
import re
import subprocess
import sys
import time

from .common import record_failure
from .common import (STDBUF, LinkParams, count_matching, log, median, new_lab, push, run_parallel,
                     snmp6, source_mac)

TICK = re.compile(r"^\[(\d+)\.(\d+)\] announce primary", re.M)
LOGLINE = re.compile(r"^\[(\d+\.\d+)\] (.*)$", re.M)
COMPLETE = re.compile(r"transaction \d+ from (\S+) .*complete: (\d+) packets, (\d+) bytes")


def variants(bins) -> dict:
    return {
        "debian": {"bin": bins.debian, "flags": [], "wrapper": STDBUF, "desc": "Debian alfred (UDP)"},
        "ours-udp": {"bin": bins.ours, "flags": ["-d"], "wrapper": [], "desc": "ours, no -t"},
        "ours-tcp": {"bin": bins.ours, "flags": ["-t", "-d"], "wrapper": [], "desc": "ours, -t"},
    }


def _ticks(path: str) -> list[float]:
    try:
        with open(path, errors="replace") as f:
            txt = f.read()
    except OSError:
        return []
    return [int(s) + int(ns.ljust(9, "0")[:9]) / 1e9 for s, ns in TICK.findall(txt)]


def _loglines(path: str) -> list[tuple[float, str]]:
    try:
        with open(path, errors="replace") as f:
            txt = f.read()
    except OSError:
        return []
    return [(float(t), m) for t, m in LOGLINE.findall(txt)]


def run_cell(cfg, bins, loss: float, variant: str, rep: int) -> dict:
    v = variants(bins)[variant]
    P = cfg.period
    res = {"loss": loss, "variant": variant, "rep": rep, "records": cfg.records, "size": cfg.size,
           "bytes": cfg.records * cfg.size, "period": P, "converged": False}
    lab = new_lab(2, LinkParams(loss=loss, mtu=1280))
    try:
        a, b = lab.node(1), lab.node(2)
        a.label, b.label = f"{variant}/A", f"{variant}/B"
        b.start(v["bin"], primary=True, period=P, flags=v["flags"], wrapper=v["wrapper"])
        time.sleep(1.0)
        a.start(v["bin"], primary=True, period=P, flags=v["flags"], wrapper=v["wrapper"])
        t_start = time.monotonic()
        # marker: once B has it, A knows B
        marker = {bytes.fromhex(a.mac.replace(":", "")): b"marker"}
        push(a.sock, 65, b"marker")
        deadline = t_start + 4 * P + 10
        while count_matching(b.sock, 65, marker) != 1:
            if time.monotonic() > deadline:
                raise RuntimeError(f"B never got A's marker within {4 * P + 10:g}s (A never synced to B)")
            lab.check_daemons()
            time.sleep(0.2)
        # A's first tick (our primaries forward fresh data promptly, so B may
        # have the marker before A ever ticked)
        ticks = _ticks(a.out_log)
        while not ticks:
            if time.monotonic() > deadline:
                raise RuntimeError("no 'announce primary' line from A on stdout")
            time.sleep(0.1)
            ticks = _ticks(a.out_log)
        # load PHASE s after A's latest tick (or the next one if that is past)
        target = ticks[-1] + cfg.phase
        while target < time.monotonic() + 0.05:
            target += P
        time.sleep(target - time.monotonic())
        snmp_before = snmp6(b.ns)
        rnd = random.Random(1000 * rep + int(loss * 10) + 7)
        expected = {}
        for k in range(cfg.records):
            mac = source_mac(k + 1)
            payload = rnd.randbytes(cfg.size)
            push(a.sock, 64, payload, source=mac)
            expected[mac] = payload
        t_load = time.monotonic()
        res["load_s"] = round(t_load - target, 3)
        # poll B
        end = t_load + cfg.deadline
        have = 0
        t_conv = None
        polls = 0
        while time.monotonic() < end:
            have = count_matching(b.sock, 64, expected)
            polls += 1
            if have == cfg.records:
                t_conv = time.monotonic()
                break
            lab.check_daemons()
            time.sleep(cfg.interval)
        res["polls"] = polls
        snmp_after = snmp6(b.ns)
        # B's kernel: reassembly failures and UDP receive-buffer drops since the load
        res["B_kernel"] = {k: snmp_after.get(k, 0) - snmp_before.get(k, 0) for k in snmp_after}
        res["records_at_deadline"] = cfg.records if t_conv else max(have, 0)
        res["fraction_at_deadline"] = round(res["records_at_deadline"] / cfg.records, 4)
        ticks = _ticks(a.out_log)
        after = [t for t in ticks if t > t_load]
        first = after[0] if after else None
        res["phase_s"] = round((first - t_load), 3) if first is not None else None
        if first is not None and not (0 <= first - t_load <= P + 1):
            res["clock_warning"] = f"first tick after load {first - t_load:.3f}s later (clock mismatch?)"
        if t_conv is not None:
            res["converged"] = True
            res["from_load_s"] = round(t_conv - t_load, 3)
            res["syncs"] = sum(1 for t in ticks if t_load < t <= t_conv)
            # 0 ticks: delivered before A's next periodic sync (prompt forwarding)
            res["before_next_tick"] = res["syncs"] == 0
            if first is not None and res["syncs"] > 0:
                res["from_first_sync_s"] = round(t_conv - first, 3)
        # our daemons' -d logs
        if variant != "debian":
            la, lb = _loglines(a.err_log), _loglines(b.err_log)
            res["tcp_pushes"] = sum(1 for t, m in la if t > t_load and ": push of " in m)
            res["tcp_fallbacks"] = sum(1 for t, m in la if t > t_load and "falling back to UDP" in m)
            res["lost_syncs"] = sum(1 for t, m in lb if t > t_load and "timed out with" in m)
            done = [t for t, m in lb if t > t_load and (mm := COMPLETE.search(m))
                    and int(mm.group(3)) >= cfg.records * cfg.size]
            if done:
                res["log_complete_from_load_s"] = round(done[0] - t_load, 3)
                if first is not None and done[0] >= first:
                    res["log_complete_from_sync_s"] = round(done[0] - first, 3)
        lab.check_daemons()
    except Exception as e:  # noqa: BLE001 - recorded, the run goes on
        record_failure(res, lab, e)
    finally:
        lab.close()
    return res


LINK_SERVER = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 5001)); s.listen(1)
print("ready", flush=True)
c, _ = s.accept()
n = 0; t0 = None
while True:
    d = c.recv(1 << 20)
    if not d: break
    if t0 is None: t0 = time.monotonic()
    n += len(d)
print(n, time.monotonic() - t0, flush=True)
"""

LINK_CLIENT = r"""
import socket, sys, time
n = int(sys.argv[2]); buf = b"\0" * (1 << 16)
s = socket.create_connection((sys.argv[1], 5001), timeout=30)
sent = 0
while sent < n:
    sent += s.send(buf[:min(len(buf), n - sent)])
s.shutdown(socket.SHUT_WR); s.recv(1)
"""


def measure_link(cfg) -> dict:
    """TCP bulk throughput n1 -> n2 and ping RTT on a clean MTU-1280 VDE link."""
    out = {}
    lab = new_lab(2, LinkParams(mtu=1280))
    try:
        n1, n2 = lab.node(1), lab.node(2)
        nbytes = cfg.link_bytes
        runs = []
        for _ in range(cfg.link_runs):
            srv = subprocess.Popen(["ip", "netns", "exec", n2.ns, sys.executable, "-c", LINK_SERVER],
                                   stdout=subprocess.PIPE, text=True)
            try:
                srv.stdout.readline()
                subprocess.run(["ip", "netns", "exec", n1.ns, sys.executable, "-c", LINK_CLIENT, n2.ip4,
                                str(nbytes)], check=True, timeout=120)
                line = srv.stdout.readline().split()
                srv.wait(10)
                got, secs = int(line[0]), float(line[1])
                runs.append(got / secs)
            finally:
                if srv.poll() is None:
                    srv.kill()
                    srv.wait()
        out["tcp_bytes"] = nbytes
        out["tcp_Bps_runs"] = [round(r) for r in runs]
        out["tcp_Bps"] = round(max(runs))
        cp = n1.exec(["ping", "-q", "-c", "20", "-i", "0.05", n2.ip4], check=False)
        m = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)", cp.stdout.decode())
        if m:
            out["rtt_ms_min"], out["rtt_ms_avg"], out["rtt_ms_max"] = (float(m.group(i)) for i in (1, 2, 3))
    finally:
        lab.close()
    return out


def run(cfg, bins) -> dict:
    log("section 1: link capacity")
    link = measure_link(cfg)
    log(f"  TCP {link['tcp_Bps'] / 1e6:.1f} MB/s, RTT avg {link.get('rtt_ms_avg')} ms")
    cells = [(loss, var, rep) for rep in range(cfg.reps) for loss in cfg.losses
             for var in ("debian", "ours-udp", "ours-tcp")]
    log(f"section 1: {len(cells)} cells ({cfg.reps} rep(s) x {len(cfg.losses)} loss levels x 3 variants), "
        f"{cfg.parallel} at a time, period {cfg.period:g}s, deadline {cfg.deadline:g}s")
    t0 = time.monotonic()

    def one(c):
        r = run_cell(cfg, bins, *c)
        tag = (f"from load {r['from_load_s']:.2f}s, from sync {r.get('from_first_sync_s')}"
               if r.get("converged") else f"{r.get('records_at_deadline')}/{cfg.records} at deadline")
        log(f"  loss {c[0]:g}% {c[1]:8s} rep {c[2]}: {tag}" + (f"  ERROR {r['error']}" if "error" in r else ""))
        return r
    results = run_parallel(one, cells, cfg.parallel)
    cells_out = []
    for c, r in zip(cells, results):
        if isinstance(r, BaseException):
            r = {"loss": c[0], "variant": c[1], "rep": c[2], "converged": False, "error": repr(r)}
        cells_out.append(r)
    nbytes = cfg.records * cfg.size
    lb = None
    if link.get("tcp_Bps"):
        lb = nbytes / link["tcp_Bps"] + (link.get("rtt_ms_avg") or 0) / 1000.0
    summary = summarize(cfg, cells_out)
    return {"link": link, "lower_bound_s": None if lb is None else round(lb, 4), "cells": cells_out,
            "summary": summary, "wall_s": round(time.monotonic() - t0, 1),
            "config": {"records": cfg.records, "size": cfg.size, "bytes": nbytes, "period": cfg.period,
                       "phase": cfg.phase, "deadline": cfg.deadline, "interval": cfg.interval,
                       "losses": cfg.losses, "reps": cfg.reps, "mtu": 1280}}


def summarize(cfg, cells) -> list[dict]:
    out = []
    target = cfg.period + 2.0
    for loss in cfg.losses:
        for var in ("debian", "ours-udp", "ours-tcp"):
            cs = [c for c in cells if c["loss"] == loss and c["variant"] == var]
            ok = [c for c in cs if c.get("converged")]
            fl = [c["from_load_s"] for c in ok]
            fs = [c["from_first_sync_s"] for c in ok if c.get("from_first_sync_s") is not None]
            fr = [c.get("fraction_at_deadline", 0.0) for c in cs if "error" not in c]
            row = {"loss": loss, "variant": var, "runs": len(cs), "errors": sum(1 for c in cs if "error" in c),
                   "converged_runs": len(ok),
                   "from_load_med": median(fl), "from_load_max": max(fl) if fl else None,
                   "from_sync_med": median(fs), "from_sync_max": max(fs) if fs else None,
                   "syncs_max": max((c.get("syncs") or 0 for c in ok), default=None),
                   "before_next_tick_runs": sum(1 for c in ok if c.get("before_next_tick")),
                   "fraction_min": min(fr) if fr else None,
                   "fraction_avg": (sum(fr) / len(fr)) if fr else None,
                   "phase_med": median([c.get("phase_s") for c in cs]),
                   "lost_syncs": sum(c.get("lost_syncs", 0) for c in cs) if var != "debian" else None,
                   "tcp_fallbacks": sum(c.get("tcp_fallbacks", 0) for c in cs) if var == "ours-tcp" else None,
                   "B_udp_rcvbuf_errors": sum(c.get("B_kernel", {}).get("Udp6RcvbufErrors", 0) for c in cs),
                   "B_reasm_fails": sum(c.get("B_kernel", {}).get("Ip6ReasmFails", 0) for c in cs),
                   "target_s": target}
            row["meets_target"] = (len(ok) == len(cs) and len(cs) > 0 and row["errors"] == 0
                                   and row["from_load_max"] is not None and row["from_load_max"] <= target)
            out.append(row)
    return out
