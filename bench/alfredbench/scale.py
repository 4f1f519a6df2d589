"""Section 2: a mesh of 3 primaries and N-3 secondaries at 5 % loss (MTU 1280,
-p PERIOD; cases N:PERIOD), every node sets one record of SIZE bytes; time until every
primary holds every record, and CPU seconds / peak RSS of every daemon.

  * Daemons start in random order spread over one period (their sync ticks
    are not in phase, as in a real mesh); SETTLE = max(3 s, 1.25 periods)
    after the last start (every primary has announced) each node gets one type-64 record (raw unix push with a zero
    source, i.e. the node's own MAC, like `alfred -s`), all within a few ms.
  * t0 = when the last push returned.  The 3 primaries are polled (raw
    request, payloads compared) every INTERVAL s until each holds all N
    records; the mesh time is the slowest primary.
  * Our daemons run with -d (connection log lines: TCP pushes, connects
    delayed by a lost SYN, skipped syncs, fallbacks, counted from 1 s
    before t0); the primaries' kernel counters (UDP receive-buffer drops,
    reassembly failures) are read for both variants.
  * Every daemon then runs until t0 + WINDOW whether converged or not, so
    both variants are measured over the same wall time: CPU in the window
    [t0, t0 + WINDOW] exactly with `perf stat -e task-clock --per-thread`
    attached to all daemons, and over the whole life (start, settle, window)
    as utime+stime from /proc/<pid>/stat (10 ms ticks); peak RSS = VmHWM
    from /proc/<pid>/status.
"""

from __future__ import annotations

import random
import re
import threading
import time

from .common import (LinkParams, TaskClock, count_matching, daemon_pid, daemon_stats, log, new_lab,
                     printable, push, snmp6)

ANYLINE = re.compile(r"^\[(\d+\.\d+)\] (.*)$", re.M)
LOGLINE = re.compile(r"^\[(\d+\.\d+)\] tcp (\d+): (push of|connected to)", re.M)


def tcp_diagnostics(lab, t0: float) -> dict:
    """From our daemons' -d logs, after t0: TCP pushes, connects that took
    >= 0.9 s (a lost SYN or SYN-ACK: Linux retries the SYN after 1 s),
    syncs skipped because the previous push to that peer was still running,
    fallbacks to UDP."""
    pushes = slow = skipped = fallbacks = 0
    for nd in lab.nodes:
        try:
            with open(nd.err_log, errors="replace") as f:
                txt = f.read()
        except OSError:
            continue
        start = {}
        for m in LOGLINE.finditer(txt):
            t, cid, what = float(m.group(1)), m.group(2), m.group(3)
            if t < t0:
                continue
            if what == "push of":
                start[cid] = t
                pushes += 1
            elif cid in start and t - start[cid] >= 0.9:
                slow += 1
        for m in ANYLINE.finditer(txt):
            if float(m.group(1)) >= t0:
                if "still running, skipping" in m.group(2):
                    skipped += 1
                elif "falling back to UDP" in m.group(2):
                    fallbacks += 1
    return {"tcp_pushes": pushes, "slow_connects": slow, "skipped_syncs": skipped, "fallbacks": fallbacks}


def run_one(cfg, bins, n: int, variant: str, period: float) -> dict:
    if variant == "ours-tcp":
        binp, flags = bins.ours, ["-t", "-d"]  # -d: connection log lines for the diagnostics
    else:
        binp, flags = bins.debian, []
    P = period
    res = {"nodes": n, "primaries": 3, "secondaries": n - 3, "variant": variant, "loss": cfg.scale_loss,
           "period": P, "size": cfg.scale_size, "window_s": cfg.scale_window}
    t_lab = time.monotonic()
    lab = new_lab(n, LinkParams(loss=cfg.scale_loss, mtu=1280))
    res["lab_up_s"] = round(time.monotonic() - t_lab, 1)
    try:
        # start in random order, spread over one period: sync ticks of
        # daemons in a real mesh are not in phase
        order = list(lab.nodes)
        random.Random(7 * n).shuffle(order)
        t_s = time.monotonic()
        for k, nd in enumerate(order):
            delay = t_s + k * P / n - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            nd.start(binp, primary=nd.index <= 3, period=P, flags=flags, wait=False)
        for nd in lab.nodes:
            nd.wait_ready(20)
        pids = {nd.index: daemon_pid(nd) for nd in lab.nodes}
        # every primary has announced (and synced) after all started
        time.sleep(max(3.0, 1.25 * P))
        lab.check_daemons()
        rnd = random.Random(n)
        expected = {}
        for nd in lab.nodes:
            payload = printable(rnd, cfg.scale_size)
            push(nd.sock, 64, payload)
            expected[bytes.fromhex(nd.mac.replace(":", ""))] = payload
        t0 = time.monotonic()
        end = t0 + cfg.scale_window
        k0 = {i: snmp6(lab.node(i).ns) for i in (1, 2, 3)}
        tc = TaskClock(list(pids.values())).start()
        conv: dict[int, float | None] = {}
        have: dict[int, int] = {}

        def poll(nd):
            while time.monotonic() < end:
                c = count_matching(nd.sock, 64, expected)
                have[nd.index] = c
                if c == n:
                    conv[nd.index] = time.monotonic() - t0
                    return
                time.sleep(cfg.interval)
            conv[nd.index] = None
        ths = [threading.Thread(target=poll, args=(lab.node(i),), daemon=True) for i in (1, 2, 3)]
        for th in ths:
            th.start()
        for th in ths:
            th.join(cfg.scale_window + 30)
        rest = end - time.monotonic()
        if rest > 0:
            time.sleep(rest)
        lab.check_daemons()
        window_cpu = tc.stop()
        stats = {i: daemon_stats(pid) for i, pid in pids.items()}
        k1 = {i: snmp6(lab.node(i).ns) for i in (1, 2, 3)}
        res["primaries_kernel"] = {k: sum(k1[i].get(k, 0) - k0[i].get(k, 0) for i in (1, 2, 3))
                                   for k in ("Udp6RcvbufErrors", "Ip6ReasmFails", "Ip6ReasmOKs")}
        if variant == "ours-tcp":
            res["tcp"] = tcp_diagnostics(lab, t0 - 1.0)
        times = [conv.get(i) for i in (1, 2, 3)]
        res["primary_converged_s"] = [None if t is None else round(t, 3) for t in times]
        res["converged"] = all(t is not None for t in times)
        res["mesh_s"] = round(max(times), 3) if res["converged"] else None
        res["records_at_end"] = [n if conv.get(i) is not None else have.get(i, 0) for i in (1, 2, 3)]
        res["record_fraction"] = round(sum(res["records_at_end"]) / (3 * n), 4)
        res["wall_s"] = round(time.monotonic() - t_lab, 1)
        for role, idx in (("primary", [1, 2, 3]), ("secondary", list(range(4, n + 1)))):
            cpu = [stats[i]["cpu_s"] for i in idx if stats[i]["cpu_s"] is not None]
            hwm = [stats[i]["hwm_kb"] for i in idx if stats[i]["hwm_kb"] is not None]
            res[f"{role}_cpu_s_max"] = round(max(cpu), 3) if cpu else None
            res[f"{role}_cpu_s_avg"] = round(sum(cpu) / len(cpu), 3) if cpu else None
            res[f"{role}_hwm_kb_max"] = max(hwm) if hwm else None
            res[f"{role}_hwm_kb_avg"] = round(sum(hwm) / len(hwm)) if hwm else None
            wc = [window_cpu[pids[i]] for i in idx if pids[i] in window_cpu]
            res[f"{role}_window_cpu_ms_max"] = round(max(wc) * 1000, 1) if wc else None
            res[f"{role}_window_cpu_ms_avg"] = round(sum(wc) / len(wc) * 1000, 1) if wc else None
        res["daemon_lifetime_s"] = round(time.monotonic() - t_lab - res["lab_up_s"], 1)
        res["target_s"] = 2 * P
        res["meets_target"] = res["converged"] and res["mesh_s"] <= 2 * P
    except Exception as e:  # noqa: BLE001 - recorded
        res["error"] = str(e).splitlines()[0][:300]
        try:
            res["logs"] = lab.daemon_logs(10)[-3000:]
        except Exception:  # noqa: BLE001
            pass
    finally:
        lab.close()
    return res


def run(cfg, bins) -> dict:
    out = []
    for n, period in cfg.scale_cases:
        for variant in ("debian", "ours-tcp"):
            log(f"section 2: {n} nodes (3 primaries), {variant}, {cfg.scale_loss:g}% loss, -p {period:g}")
            r = run_one(cfg, bins, n, variant, period)
            log("  " + (f"ERROR {r['error']}" if "error" in r else
                        f"mesh {r['mesh_s']}s, primaries {r['primary_converged_s']}, "
                        f"records {r['record_fraction'] * 100:.1f}%, CPU primary max {r['primary_cpu_s_max']}s, "
                        f"HWM primary max {r['primary_hwm_kb_max']} kB"))
            out.append(r)
    return {"runs": out, "config": {"cases": cfg.scale_cases, "loss": cfg.scale_loss,
                                    "size": cfg.scale_size, "window": cfg.scale_window}}
