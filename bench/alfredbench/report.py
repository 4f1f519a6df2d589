"""Printed tables and the flat CSV of a benchmark result."""

from __future__ import annotations

import csv
import io

from . import auth, footprint, steady
from .common import fmt, fmt_ratio, median, percentile_inf, ratio, table



def trace_text(tr: dict) -> str:
    """A late record's path, for the CSV: where it was last and why."""
    return f"{tr.get('source')} on {tr.get('late_primary')} at {tr.get('arrived_s')} s: {tr.get('cause')}"

def _mb(kb):
    return None if kb is None else kb / 1024.0


def _pair(a, b, nd=2, unit=""):
    return f"{fmt(a, nd)}/{fmt(b, nd)}{unit}"


def _dist(d: dict | None) -> str:
    if not d:
        return ""
    flag = "  POSSIBLY DISTURBED" if d.get("disturbed") else ""
    return (f"   [host during this section: {d['host_busy_cores']} cores busy, this benchmark "
            f"{d['bench_cores']}, other load {d['other_cores']} cores; loadavg {d['loadavg_start']}->"
            f"{d['loadavg_end']}; foreign namespaces {d['foreign_namespaces']}; {d['wall_s']} s]{flag}")


def converge_text(r: dict, dist: dict | None) -> str:
    c = r["config"]
    link = r["link"]
    out = [f"1. CONVERGENCE UNDER LOSS: {c['bytes']} B ({c['records']} records x {c['size']} B, one source MAC "
           f"each) on primary A, synced to primary B",
           f"   MTU 1280, frame loss per receiver only (no dup, no delay), -p {c['period']:g} (default), data loaded "
           f"{c['phase']:g} s after a sync tick of A, so the next periodic sync is ~{c['period'] - c['phase']:g} s later;",
           f"   B polled every {c['interval']:g} s; deadline {c['deadline']:g} s; {c['reps']} run(s) per cell",
           f"   link (0% loss): TCP bulk {fmt(link.get('tcp_Bps', 0) / 1e6, 1)} MB/s "
           f"(runs {', '.join(f'{x / 1e6:.1f}' for x in link.get('tcp_Bps_runs', []))}), "
           f"ping RTT min/avg {link.get('rtt_ms_min')}/{link.get('rtt_ms_avg')} ms"
           f"  =>  lower bound = bytes / rate + RTT = {fmt(r.get('lower_bound_s'), 3)} s after the sync "
           f"that carries the data",
           _dist(dist)]
    rows = []
    summ = r["summary"]
    deb = {s["loss"]: s for s in summ if s["variant"] == "debian"}
    for s in summ:
        d = deb.get(s["loss"])
        if s["variant"] == "debian":
            vs = ""
        elif d and d["from_load_med"] is not None and s["from_load_med"] is not None:
            vs = f"{fmt_ratio(ratio(s['from_load_med'], d['from_load_med']))} time"
        elif d and s["fraction_avg"] is not None and d["fraction_avg"] is not None:
            vs = f"records {s['fraction_avg'] * 100:.0f}% vs {d['fraction_avg'] * 100:.0f}%"
        else:
            vs = "-"
        tgt = ""
        if s["variant"] == "ours-tcp":
            tgt = ("MET" if s["meets_target"] else "MISSED") + f" (<= {s['target_s']:g} s from load, every run)"
        rows.append([f"{s['loss']:g}%", s["variant"], f"{s['converged_runs']}/{s['runs']}"
                     + (f" ({s['errors']} err)" if s["errors"] else ""),
                     _pair(s["from_load_med"], s["from_load_max"]),
                     _pair(s["from_sync_med"], s["from_sync_max"]),
                     f"{s.get('before_next_tick_runs', 0)}/{s['converged_runs']}", fmt(s["syncs_max"]),
                     f"{fmt(None if s['fraction_min'] is None else s['fraction_min'] * 100, 0)}/"
                     f"{fmt(None if s['fraction_avg'] is None else s['fraction_avg'] * 100, 0)}%",
                     fmt(s["lost_syncs"]), fmt(s["tcp_fallbacks"]),
                     f"{s.get('B_udp_rcvbuf_errors', 0)}/{s.get('B_reasm_fails', 0)}", vs, tgt])
    out.append(table(rows, ["loss", "variant", "converged", "from load s med/max", "from 1st tick s med/max",
                            "before tick", "ticks", "records @deadline min/avg", "lost syncs", "fallbacks",
                            "B rcvbuf drops/reasm fails", "vs Debian", "target"]))
    out.append("   converged = runs in which B held all records within the deadline; before tick = converged runs "
               "in which B had everything before A's next periodic sync (prompt forwarding);\n"
               "   ticks = A's sync ticks between load and convergence (max); from 1st tick = convergence - A's first "
               "tick after the load, over runs that needed a tick; lost syncs = B's -d 'transaction timed out' lines (ours only);\n"
               "   B rcvbuf drops/reasm fails = B's kernel Udp6RcvbufErrors / Ip6ReasmFails after the load, summed "
               "over runs (datagrams dropped before the daemon saw them)")
    return "\n".join(x for x in out if x)


def _groups(runs: list[dict]) -> list[tuple[tuple, list[dict]]]:
    """Runs grouped by (nodes, period, loss, variant), in order of appearance."""
    order: list[tuple] = []
    g: dict[tuple, list[dict]] = {}
    for x in runs:
        k = (x["nodes"], x["period"], x.get("loss"), x["variant"])
        if k not in g:
            g[k] = []
            order.append(k)
        g[k].append(x)
    return [(k, g[k]) for k in order]


def _med(xs):
    xs = [x for x in xs if x is not None]
    return median(xs) if xs else None


def _secs(x, window):
    if x is None:
        return "-"
    if x == float("inf"):
        return f">{window:g}"
    return f"{x:.2f}"


def _scale_summary(xs: list[dict]) -> dict:
    ok = [x for x in xs if "error" not in x]
    inf = float("inf")
    times = sorted((x["mesh_s"] if x.get("mesh_s") is not None else inf) for x in ok)
    s = {"runs": len(xs), "errors": len(xs) - len(ok), "ok": len(ok),
         "converged": sum(1 for x in ok if x.get("converged")),
         "met": sum(1 for x in ok if x.get("meets_target")),
         "min": times[0] if times else None, "med": percentile_inf(times, 50) if times else None,
         "max": times[-1] if times else None, "times": times,
         "target_s": ok[0].get("target_s") if ok else None,
         "window": ok[0].get("window_s") if ok else None,
         "frac_min": min((x["record_fraction"] for x in ok), default=None),
         "frac_avg": (sum(x["record_fraction"] for x in ok) / len(ok)) if ok else None}
    for k in ("primary_window_cpu_ms_max", "primary_window_cpu_ms_avg", "secondary_window_cpu_ms_max",
              "secondary_window_cpu_ms_avg", "primary_cpu_s_max", "secondary_cpu_s_max", "primary_cpu_s_avg",
              "secondary_cpu_s_avg", "primary_hwm_kb_avg", "secondary_hwm_kb_avg"):
        s[k] = _med([x.get(k) for x in ok])
    for k in ("primary_hwm_kb_max", "secondary_hwm_kb_max"):
        v = [x.get(k) for x in ok if x.get(k) is not None]
        s[k] = max(v) if v else None
    return s


def _cpu_of(s: dict, role: str):
    v = s.get(f"{role}_window_cpu_ms_avg")
    return v if v is not None else s.get(f"{role}_cpu_s_avg")


def _tcp_sum(xs: list[dict]) -> dict:
    tot: dict = {}
    reasons: dict = {}
    ack_max = None
    slow_s: list = []
    for x in xs:
        t = x.get("tcp")
        if not t:
            continue
        for k, v in t.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("ack_s_max", "ack_s_p99"):
                tot[k] = tot.get(k, 0) + v
        for k, v in (t.get("down_reasons") or {}).items():
            reasons[k] = reasons.get(k, 0) + v
        if t.get("ack_s_max") is not None:
            ack_max = t["ack_s_max"] if ack_max is None else max(ack_max, t["ack_s_max"])
        slow_s += t.get("slow_connect_s") or []
    tot["down_reasons"] = reasons
    tot["ack_s_max"] = ack_max
    tot["slow_connect_s"] = sorted(slow_s, reverse=True)[:6]
    return tot


def _tcp_line(t: dict) -> str:
    if "session_opens" not in t:  # results of the per-push connections before sessions
        return (f"TCP pushes {t.get('tcp_pushes', 0)}, connects delayed >= 0.9 s by a lost SYN/SYN-ACK "
                f"{t.get('slow_connects', 0)}, syncs skipped {t.get('skipped_syncs', 0)}, fallbacks "
                f"{t.get('fallbacks', 0)}")
    down = ", ".join(f"{k} x{v}" for k, v in t.get("down_reasons", {}).items())
    slow = t.get("slow_connect_s") or []
    return (f"sessions opened {t.get('session_opens', 0)}, handshakes >= 0.9 s (lost SYN/SYN-ACK) "
            f"{t.get('slow_connects', 0)}" + (f" (longest {', '.join(f'{v:g}' for v in slow[:4])} s)" if slow else "")
            + f", pushes {t.get('tcp_pushes', 0)}, acknowledged {t.get('acks', 0)} (slowest "
            f"{fmt(t.get('ack_s_max'), 2)} s, {t.get('acks_over_0_5s', 0)} >= 0.5 s), sessions down "
            f"{t.get('sessions_down', 0)}" + (f" ({down})" if down else "")
            + f", reconnects {t.get('reconnects', 0)}, unacknowledged dropped {t.get('unacked_dropped', 0)}, "
            f"UDP copies {t.get('udp_copies', 0)}, fallbacks {t.get('fallbacks', 0)}")


def scale_text(r: dict, dist: dict | None) -> str:
    c = r["config"]
    runs = r["runs"]
    cases = c.get("cases") or []
    reps = sorted({x.get("reps", 1) for x in cases if isinstance(x, dict)}) or [1]
    link = f"{c['loss']:g}% loss" if not any(isinstance(x, dict) for x in cases) else "frame loss as listed"
    if c.get("dup") or c.get("delay_ms"):
        link += f", {c.get('dup', 0):g}% dup, {c.get('delay_ms', 0):g} ms delay"
    wins = sorted({x.get("window_s") or c["window"] for x in runs})
    if len(wins) <= 1:
        wtxt = f"{(wins or [c['window']])[0]:g} s"
    else:
        per = {}
        for x in runs:
            per.setdefault(f"{x['nodes']} -p {x['period']:g}" + (f" {x['loss']:g}%" if x.get("loss") is not None
                                                                  else ""), x.get("window_s") or c["window"])
        wtxt = ", ".join(f"{k}: {v:g} s" for k, v in per.items())
    out = [f"2. SCALE: 3 primaries + N-3 secondaries, {link} (each receiver's downlink), MTU 1280, -p as listed; "
           f"every node sets one {c['size']} B record;",
           f"   mesh s = time from the last set until all 3 primaries hold all N records (min/median/max over runs, "
           f"'>W' = not within the window, {wtxt}); fresh daemons every run, variants alternating;",
           f"   daemons started in random order over one period; window CPU = perf task-clock per daemon during the "
           f"window after the last set ({wtxt}; same for both variants); CPU and RSS avg: median over runs, "
           f"RSS max: max over runs;",
           f"   life CPU = utime+stime over the daemon's whole life (start, settle, window; 10 ms ticks); peak RSS = "
           f"VmHWM; max/avg over daemons; ours runs with {c.get('ours_flags', '-t -d')}, Debian's without flags",
           "   target (issue 8, ours): mesh within 2 s in every run for 33 nodes at 5% loss, 3 s at 10% loss or 100 "
           "nodes; at -p 1 also CPU per primary <= Debian's, RSS per primary <= 1.5x Debian's",
           _dist(dist)]
    rows = []
    groups = _groups(runs)
    summ = {k: _scale_summary(xs) for k, xs in groups}
    for k, xs in groups:
        n, P, loss, variant = k
        s = summ[k]
        lossf = "-" if loss is None else f"{loss:g}%"
        if not s["ok"]:
            rows.append([str(n), f"{P:g}", lossf, variant, str(s["runs"]),
                         "ERROR " + next(x["error"] for x in xs if "error" in x)[:80]])
            continue
        W = s["window"] or c["window"]
        deb = summ.get((n, P, loss, "debian"))
        vs, tgt = "", ""
        if variant != "debian" and deb and deb["ok"]:
            if deb["med"] not in (None, float("inf")) and s["med"] not in (None, float("inf")):
                t = f"time {fmt_ratio(ratio(s['med'], deb['med']))}"
            else:
                t = f"records {s['frac_avg'] * 100:.0f}% vs {deb['frac_avg'] * 100:.0f}%"
            rc = ratio(_cpu_of(s, "primary"), _cpu_of(deb, "primary"))
            rr = ratio(s["primary_hwm_kb_max"], deb["primary_hwm_kb_max"])
            vs = (f"{t}, CPU/prim {fmt_ratio(rc)}, CPU/sec "
                  f"{fmt_ratio(ratio(_cpu_of(s, 'secondary'), _cpu_of(deb, 'secondary')))}, RSS/prim {fmt_ratio(rr)}")
            if s["target_s"] is not None:
                tgt = (f"time {'MET' if s['met'] == s['runs'] else 'MISSED'} "
                       f"({s['met']}/{s['runs']} <= {s['target_s']:g} s)")
                if P <= 1:
                    tgt += (f", CPU {'MET' if rc is not None and rc <= 1 else 'MISSED'} (<= 1x)"
                            f", RSS {'MET' if rr is not None and rr <= 1.5 else 'MISSED'} (<= 1.5x)")
        elif variant != "debian" and s["target_s"] is not None:
            tgt = f"time {'MET' if s['met'] == s['runs'] else 'MISSED'} ({s['met']}/{s['runs']} <= {s['target_s']:g} s)"
        rows.append([str(n), f"{P:g}", lossf, variant,
                     f"{s['runs']}" + (f" ({s['errors']} err)" if s["errors"] else ""),
                     f"{s['converged']}/{s['ok']}",
                     f"{_secs(s['min'], W)}/{_secs(s['med'], W)}/{_secs(s['max'], W)}",
                     "" if s["target_s"] is None else f"{s['met']}/{s['ok']}",
                     f"{fmt(None if s['frac_min'] is None else s['frac_min'] * 100, 1)}%",
                     _pair(s.get("primary_window_cpu_ms_max"), s.get("primary_window_cpu_ms_avg"), 0),
                     _pair(s.get("secondary_window_cpu_ms_max"), s.get("secondary_window_cpu_ms_avg"), 1),
                     _pair(s["primary_cpu_s_max"], s["secondary_cpu_s_max"]),
                     _pair(_mb(s["primary_hwm_kb_max"]), _mb(s["primary_hwm_kb_avg"]), 1),
                     _pair(_mb(s["secondary_hwm_kb_max"]), _mb(s["secondary_hwm_kb_avg"]), 1),
                     vs, tgt])
    out.append(table(rows, ["nodes", "-p", "loss", "variant", "runs", "converged", "mesh s min/med/max",
                            "<= target", "records min", "window CPU ms prim max/avg", "window CPU ms sec max/avg",
                            "life CPU s max prim/sec", "RSS MB prim max/avg", "RSS MB sec max/avg",
                            "ours vs Debian", "target"]))
    for k, xs in groups:
        n, P, loss, variant = k
        ok = [x for x in xs if "error" not in x]
        if not ok:
            continue
        s = summ[k]
        W = s["window"] or c["window"]
        lossf = "" if loss is None else f" {loss:g}%"
        name = f"   {n} nodes -p {P:g}{lossf} {variant}"
        if len(ok) > 1:
            out.append(f"{name}: mesh s per run (sorted): " + " ".join(_secs(t, W) for t in s["times"]))
        kern = {kk: sum(x.get("primaries_kernel", {}).get(kk, 0) for x in ok)
                for kk in ("Udp6RcvbufErrors", "Ip6ReasmFails")}
        line = (f"{name}: primaries' kernels dropped {kern['Udp6RcvbufErrors']} datagrams on full receive "
                f"buffers, {kern['Ip6ReasmFails']} reassembly failures")
        anon = [x.get("primary_rss_anon_kb_max") for x in ok if x.get("primary_rss_anon_kb_max") is not None]
        if anon:
            fil = [x.get("primary_rss_file_kb_max") or 0 for x in ok]
            line += (f"; primaries' RSS at the end anonymous/file-backed {max(anon) / 1024:.1f}/"
                     f"{max(fil) / 1024:.1f} MB (max)")
        t = _tcp_sum(ok)
        if len(t) > 3:
            line += f"; {_tcp_line(t)}" + (f" (sums over {len(ok)} runs)" if len(ok) > 1 else "")
        out.append(line)
        for x in ok:
            for tr in (x.get("late_traces") or [])[:1]:
                out.append(f"      run {x.get('rep', 0) + 1} missed ({_secs(x.get('mesh_s') if x.get('mesh_s') is not None else float('inf'), W)} s): "
                           f"last record {tr['source']} on {tr['late_primary']} at {tr['arrived_s']:.2f} s: "
                           f"{tr.get('cause')}")
    upd = [x for x in runs if x.get("updates")]
    if upd:
        out.append(update_text(upd))
    return "\n".join(x for x in out if x)


def update_text(upd: list[dict]) -> str:
    u0 = upd[0]["updates"]
    out = [f"2b. UPDATE LATENCY: in the converged mesh of the last run, {u0['count']} updates of one {upd[0]['size']} B "
           f"record, each on a random secondary (none with an update in flight), {u0['gap_s'][0]:g}-{u0['gap_s'][1]:g} s "
           f"apart;",
           "   latency = from the set until all 3 primaries return the new payload (raw requests round-robin); "
           f"one not there after {u0['deadline_s']:g} s counts as not arrived (infinite in the percentiles)",
           "   target (issue 8, ours): p99 <= 1 s"]
    rows = []
    deb = {(x["nodes"], x["period"], x.get("loss")): x["updates"] for x in upd if x["variant"] == "debian"}

    def s(v):
        return "-" if v is None else f"{v:.3f}"
    for x in upd:
        u = x["updates"]
        key = (x["nodes"], x["period"], x.get("loss"))
        vs, tgt = "", ""
        if x["variant"] != "debian":
            d = deb.get(key)
            if d:
                if d["p99_s"] is not None and u["p99_s"] is not None:
                    vs = f"p50 {fmt_ratio(ratio(u['p50_s'], d['p50_s']))}, p99 {fmt_ratio(ratio(u['p99_s'], d['p99_s']))}"
                elif d["p50_s"] is not None and u["p50_s"] is not None:
                    vs = (f"p50 {fmt_ratio(ratio(u['p50_s'], d['p50_s']))}; Debian {d['count'] - d['arrived']}/"
                          f"{d['count']} not within {d['deadline_s']:g} s")
                else:
                    vs = f"Debian {d['count'] - d['arrived']}/{d['count']} not within {d['deadline_s']:g} s"
            tgt = f"{'MET' if u['p99_s'] is not None and u['p99_s'] <= 1.0 else 'MISSED'} (p99 <= 1 s)"
        rows.append([str(x["nodes"]), f"{x['period']:g}", f"{x.get('loss', 0):g}%", x["variant"], str(u["count"]),
                     f"{u['arrived']}/{u['count']}",
                     s(u["p50_s"]) if u["p50_s"] is not None or not u["count"] else f">{u['deadline_s']:g}",
                     s(u["p99_s"]) if u["p99_s"] is not None else f">{u['deadline_s']:g}",
                     s(u["max_s"]) if u["max_s"] is not None else f">{u['deadline_s']:g}",
                     str(u["over_1s"] + u["count"] - u["arrived"]), vs, tgt])
    out.append(table(rows, ["nodes", "-p", "loss", "variant", "updates", "arrived", "p50 s", "p99 s", "max s",
                            "> 1 s or lost", "ours vs Debian", "target"]))
    for x in upd:
        u = x["updates"]
        line = f"   {x['variant']}: {u['wall_s']:g} s, {u['polls']} requests to the primaries"
        if u.get("tcp"):
            line += "; " + _tcp_line(u["tcp"])
        out.append(line)
        for tr in u.get("slow_traces") or []:
            out.append(f"      update {tr.get('update')} ({tr['source']}, {tr['arrived_s']:.2f} s on {tr['late_primary']}): "
                       f"{tr.get('cause')}")
    return "\n".join(out)


def serve_text(r: dict, dist: dict | None) -> str:
    c = r["config"]
    runs = r["runs"]
    out = [f"3. COST OF SERVING: one primary, {c['requests']} sequential raw unix-socket requests (-r 64, read to "
           f"EOF, timed in Python) for N records of {c['size']} B;",
           f"   (10x as many for N <= 100); the two daemons run at the same time, requests alternate between them;\n"
           f"   CPU = daemon CPU over those requests ({(runs[0].get('cpu_source') if runs else None) or '-'}); peak RSS = max(VmHWM, time -v maxrss) "
           f"over the daemon's life incl. loading; alfred -r = {c['client_runs']} client processes timed",
           _dist(dist)]
    rows = []
    runs = r["runs"]
    for x in runs:
        if "error" in x:
            rows.append([str(x["records"]), x["variant"], "ERROR " + x["error"][:80]])
            continue
        deb = next((y for y in runs if y["records"] == x["records"] and y["variant"] == "debian"
                    and "error" not in y), None)
        vs, tgt = "", ""
        if x["variant"] != "debian" and deb:
            rc = ratio(x["cpu_s_per_1000"], deb["cpu_s_per_1000"])
            rp = ratio(x["p99_ms"], deb["p99_ms"])
            rr = ratio(x["peak_rss_kb"], deb["peak_rss_kb"])
            vs = f"CPU {fmt_ratio(rc)}, p99 {fmt_ratio(rp)}, RSS {fmt_ratio(rr)}"
            ok_c = x["cpu_s_per_1000"] <= deb["cpu_s_per_1000"]
            ok_p = x["p99_ms"] <= deb["p99_ms"]
            ok_r = x["peak_rss_kb"] <= 2 * deb["peak_rss_kb"]
            tgt = ", ".join([f"CPU {'MET' if ok_c else 'MISSED'}", f"p99 {'MET' if ok_p else 'MISSED'}",
                             f"RSS {'MET' if ok_r else 'MISSED'}"])
        rows.append([str(x["records"]), x["variant"], fmt(x["load_s"], 2),
                     fmt(_mb(x["rss_after_load_kb"]), 2), fmt(_mb(x["peak_rss_kb"]), 2),
                     fmt(x["cpu_s_per_1000"], 4), fmt(x["p50_ms"], 3), fmt(x["p99_ms"], 3),
                     fmt(x.get("client_p50_ms"), 1), fmt(x["answer_bytes"] / 1024.0, 1), vs, tgt])
    brk = [f"N={x['records']} {x['variant']} {fmt(_mb(x.get('rss_anon_after_load_kb')), 2)}/"
           f"{fmt(_mb(x.get('rss_file_after_load_kb')), 2)}" for x in runs if "error" not in x]
    out.append(table(rows, ["records", "variant", "load s", "RSS MB loaded", "peak RSS MB", "CPU s/1000 req",
                            "p50 ms", "p99 ms", "alfred -r p50 ms", "answer KiB", "ours vs Debian",
                            "target (CPU<=, p99<=, RSS<=2x)"]))
    out.append("   RSS after load, anonymous/file-backed MB: " + "; ".join(brk))
    return "\n".join(x for x in out if x)


def stream_text(r: dict, dist: dict | None) -> str:
    c = r["config"]
    out = [f"4. MEMORY PER TCP CONNECTION: sender RSS while one primary syncs {c['records']} x {c['size']} B = "
           f"{c['records'] * c['size'] / 1e6:.1f} MB to a second primary over a wire limited to "
           f"{' or '.join(c['rates'])} B/s (wirefilter -b), -p {c.get('period', 1):g}",
           "   baseline = max VmRSS over 1 s with the data loaded; peak = max(VmRSS sampled every 50 ms, VmHWM "
           "after a reset at the baseline); extra = peak - baseline",
           _dist(dist)]
    rows = []
    xs = [("ours", x) for x in r.get("ours", [])] + ([("debian", r["debian"])] if r.get("debian") else [])
    for key, x in xs:
        if "error" in x:
            rows.append([x["variant"], x["rate"], "ERROR " + x["error"][:100]])
            continue
        tgt = ""
        if key == "ours":
            tgt = ("MET" if x.get("extra_kb", 1 << 30) < 1024 else "MISSED") + " (< 1 MB extra)"
            if x.get("receiver_records") != x["records"]:
                tgt += "; transfer FAILED"
        mode = "TCP stream" if key == "ours" else "UDP syncs (ref)"
        note = x.get("receiver_close_reason") or ""
        if x.get("concurrent_pushes", 1) > 1:
            note += f" ({x['concurrent_pushes']} pushes of the snapshot at once)"
        rows.append([x["variant"] + " " + mode, x["rate"], fmt(x["bytes"] / 1e6, 1), fmt(x.get("transfer_s"), 2),
                     fmt(x.get("MBps"), 2), fmt(_mb(x["rss_before_kb"]), 2), fmt(_mb(x["peak_kb"]), 2),
                     f"{x['extra_kb']} kB", f"{x.get('receiver_records')}/{x['records']}",
                     fmt(_mb(x.get("receiver_hwm_kb")), 1), tgt, note[:60]])
    out.append(table(rows, ["sender", "wire B/s", "data MB", "transfer s", "MB/s", "RSS MB before",
                            "peak RSS MB", "extra", "receiver has", "receiver peak MB", "target",
                            "receiver closed the stream with"]))
    return "\n".join(x for x in out if x)


def _attack_verdicts(x: dict, c: dict) -> str:
    """Targets of issue 12 for one run: RSS, honest -r, honest records, after."""
    if "error" in x or x.get("not_applicable"):
        return ""
    out = []
    rss_ok = x.get("peak_rss_kb", 1 << 30) < c["rss_target_mb"] * 1024
    out.append(f"RSS {'MET' if rss_ok else 'MISSED'}")
    if x["attack"] == "store_flood":
        out.append(f"held {'MET' if x.get('records_held', 1 << 30) <= c['store_max_records'] else 'MISSED'}")
    if x["attack"] == "accept_backoff":
        out.append(f"CPU {'MET' if x.get('cpu_cores', 1) < c['accept_cpu_target'] else 'MISSED'}")
        out.append(f"-r after {'MET' if x.get('answered_after_release_s') is not None else 'MISSED'}")
    else:
        r_ok = (x.get("probes", 0) > 0 and x.get("probe_failures", 1) == 0
                and x.get("probe_p99_ms", 1e9) < c["probe_target_s"] * 1000)
        out.append(f"-r {'MET' if r_ok else 'MISSED'}")
        out.append(f"recs {'MET' if x.get('marks_set') and x.get('marks_arrived') == x.get('marks_set') else 'MISSED'}")
    rss_after = x.get("rss_after_kb") or 1 << 30
    if x["attack"] == "store_flood":  # the flood's records stay (600 s) by design: the bound, not idle
        after_ok = rss_after < c["rss_target_mb"] * 1024
    else:
        after_ok = rss_after <= (x.get("rss_idle_kb") or 0) + c["after_slack_mb"] * 1024
    after_ok = after_ok and x.get("fds_back_s") is not None
    out.append(f"after {'MET' if after_ok else 'MISSED'}")
    return ", ".join(out)


def _attack_sent(x: dict) -> str:
    a = x.get("attacker") or {}
    if x["attack"] == "baseline":
        return "-"
    if x["attack"].startswith("unix_stall"):
        return f"{a.get('clients', 0)} clients"
    if x["attack"] == "accept_backoff":
        return f"{x.get('unix_clients_opened', 0)} listeners"
    n = a.get("sent", 0) + (a.get("announces_streamed", 0) if x["attack"] == "tiny_tcp" else 0)
    return f"{n / 1000:.0f}k pkts {a.get('bytes_sent', 0) / 1e6:.1f} MB" if n >= 1000 else \
        f"{n} pkts {a.get('bytes_sent', 0) / 1e6:.1f} MB"


def _attack_note(x: dict) -> str:
    a = x.get("attacker") or {}
    k = x["attack"]
    parts = []
    if k == "store_flood":
        parts.append(f"records sent {a.get('records_sent')}, held after {x.get('records_held')}")
    elif k == "empty_pushes":
        state = a.get("state")
        state = "open" if state in ("error:None", "open") else f"{state} (closed by the victim)"
        parts.append(f"{a.get('bytes_sent', 0) / 1e6:.1f} MB sent in {a.get('send_s')} s, "
                     f"the connection {state} at the end")
    elif k in ("tiny_tcp", "tiny_udp"):
        parts.append(f"{a.get('announces_streamed', 0)} announcements, {x.get('cpu_us_per_packet')} us CPU "
                     f"per packet")
    elif k == "udp_requests":
        back = a.get("bytes_back", 0)
        parts.append(f"answers {back / 1e6:.1f} MB to {a.get('sent')} requests "
                     f"({back / max(a.get('bytes_sent', 1), 1):.0f}x amplification)")
    elif k == "tcp_requests":
        parts.append(f"pipelined pair answered: {a.get('pipelined_txends') == [0x1111, 0x2222]}, abusive "
                     f"connection {a.get('state_after_2s')} after 2 s, {a.get('bytes_back', 0) / 1e6:.1f} MB on it")
    elif k == "announces":
        parts.append(f"victim sent {x.get('victim_out_mb')} MB, {a.get('bytes_back', 0) / 1e6:.1f} MB of it "
                     f"to the attacker's addresses")
    elif k.startswith("unix_stall"):
        parts.append(f"{a.get('clients')} connected ({a.get('not_taken')} not taken, open phase "
                     f"{x.get('open_phase_s')} s), {a.get('closed_by_daemon')} closed by the daemon "
                     f"(after s median/max {a.get('closed_after_s_median_max')}), kernel held "
                     f"{a.get('kernel_queued_mb')} MB of unread answers (max "
                     f"{a.get('kernel_queued_per_client_kb_max')} KiB a client)")
    elif k == "accept_backoff":
        w = x.get("unix_window") or {}
        lim = x.get("nofile") or ["?"]
        parts.append(f"{x.get('fds_full')} of {lim[0]} fds in use, accept failed: {x.get('emfile_seen')}, "
                     f"{w.get('accept_lines', 0) / max(w.get('window_s', 1), 1e-9):.1f} \"can't accept\" log "
                     f"lines/s ({w.get('log_bytes', 0) / 1e6:.1f} MB of log in {w.get('window_s')} s)")
        t = x.get("tcp_window")
        if t:
            parts.append(f"TCP listener failing too: {t['cpu_cores']} cores, "
                         f"{t['accept_lines'] / max(t['window_s'], 1e-9):.1f} such lines/s")
        parts.append(f"-r answered {x.get('answered_after_release_s')} s after the pressure went")
    if x.get("probe_failures"):
        parts.append("-r failures e.g. " + "; ".join(x.get("probe_failure_examples", [])[:2]))
    if x.get("fds_back_s") is None and "fds_after" in x:
        parts.append(f"fds {x.get('fds_after')} after, idle {x.get('fds_idle')}")
    if x.get("alive") is False:
        parts.append("VICTIM DIED")
    return "; ".join(p for p in parts if p)


def attack_text(r: dict, dist: dict | None) -> str:
    c = r["config"]
    out = [f"5. ATTACKS: one hostile peer or local client at a time against a fresh primary (-p "
           f"{c['victim_period']:g}; ours -t -d) holding 2 MB of type 64 (40 x 50 KB); 3-node veth lab with an "
           f"honest secondary (-p {c['honest_period']:g}) and the attacker (21 addresses, 600 for 5);",
           f"   peak RSS = max(VmRSS every 0.1 s, VmHWM reset before the attack) up to the 'after' reading; CPU = "
           f"victim utime+stime / attack wall time; -r = our `alfred -r 64` client (for both daemons) every {c['probe_every_s']:g} s, failed, "
           f"incomplete or > {c['probe_timeout_s']:g} s counts as failure and as {c['probe_timeout_s']:g} s;",
           f"   honest recs = type-65 records set on the secondary every {c['mark_every_s']:g} s that reached the "
           f"victim within {c['mark_limit_s']:g} s (max delay); after = {c['idle_after_s']:g} s after the attack "
           f"(fds polled back to idle for up to {c['fd_wait_s']:g} s)",
           f"   target (issue 12): RSS < {c['rss_target_mb']} MB (store flood: also <= {c['store_max_records']} "
           f"records held); -r p99 < {c['probe_target_s']:g} s with 0 failures; every honest record arrives; after: "
           f"fds back to idle and RSS <= idle + {c['after_slack_mb']} MB (store flood: < {c['rss_target_mb']} MB); "
           f"7: CPU < {c['accept_cpu_target']:g} cores while accept fails, -r answers afterwards",
           _dist(dist)]
    runs = r["runs"]
    rows = []
    for a in r["attacks"]:
        mine = [x for x in runs if x["attack"] == a["name"]]
        deb = next((x for x in mine if x["variant"] == "debian" and "error" not in x
                    and not x.get("not_applicable")), None)
        for x in mine:
            name = f"{a['label']} {a['name']}"
            if x.get("not_applicable"):
                rows.append([name, x["variant"], "n/a (no TCP port)"] + ["n/a"] * 8)
                continue
            if "error" in x:
                rows.append([name, x["variant"], "ERROR " + x["error"][:100]])
                continue
            vs = ""
            if x["variant"] == "ours" and deb:
                vs = (f"RSS {fmt_ratio(ratio(x.get('peak_rss_kb'), deb.get('peak_rss_kb')))}, "
                      f"CPU {fmt_ratio(ratio(x.get('cpu_cores'), deb.get('cpu_cores')))}")
                if x.get("probe_p99_ms") is not None and deb.get("probe_p99_ms") is not None:
                    vs += f", p99 {fmt_ratio(ratio(x['probe_p99_ms'], deb['probe_p99_ms']))}"
            if "probes" in x:
                lat = f"{fmt(x['probe_p50_ms'], 0)}/{fmt(x['probe_p99_ms'], 0)}"
                fails = f"{x['probe_failures']}/{x['probes']}"
                recs = f"{x.get('marks_arrived')}/{x.get('marks_set')}" + (
                    f" ({fmt(x['mark_max_s'], 2)} s)" if x.get("mark_max_s") is not None else "")
            else:
                lat, fails, recs = "n/a", "n/a", "n/a"
            rows.append([name, x["variant"], _attack_sent(x), fmt(_mb(x.get("peak_rss_kb")), 1),
                         _pair(_mb(x.get("rss_idle_kb")), _mb(x.get("rss_after_kb")), 1),
                         fmt(x.get("cpu_cores"), 3), lat, fails, recs,
                         f"{x.get('fds_idle')}/{x.get('fds_max')}/{x.get('fds_after')}", vs,
                         _attack_verdicts(x, c)])
    out.append(table(rows, ["attack", "victim", "attacker sent", "peak RSS MB", "RSS MB idle/after", "CPU cores",
                            "-r p50/p99 ms", "-r fail/n", "honest recs (max)", "fds idle/max/after",
                            "ours vs Debian", "target (RSS, [held,] -r, recs, after)"]))
    for a in r["attacks"]:
        out.append(f"   {a['label']} {a['name']} ({a['duration_s']:g} s): {a['desc']}")
        for x in runs:
            if x["attack"] == a["name"] and not x.get("not_applicable") and "error" not in x:
                note = _attack_note(x)
                if note:
                    out.append(f"      {x['variant']}: {note}")
    return "\n".join(x for x in out if x)


def micro_text(r: dict) -> str:
    if "error" in r:
        return f"MICRO: {r['error']}"
    rows = []
    for b in r["benchmarks"]:
        bps = b.get("bytes_per_second")
        rows.append([b["name"], fmt(b["cpu_ns"] / 1000.0, 2), "-" if not bps else f"{bps / 1e6:.0f}"])
    return "MICRO (build/micro_bench, in-process, ours only)\n" + table(rows, ["benchmark", "CPU us", "MB/s"])


def full_text(res: dict) -> str:
    m = res["machine"]
    b = res["binaries"]
    head = [f"alfred benchmark {res['started']}  (mode {res['mode']}, total {res.get('wall_s')} s)",
            f"machine: {m['cpu']}, {m['cores']} cores, {m['mem_gib']} GiB, kernel {m['kernel']}, Debian {m['debian']}",
            f"ours: {b['ours']} (git {b['git']}, sha256 {b['ours_sha256']}); Debian: {b['debian']} {b['debian_version']}",
            "CPU is shared with other work on this machine: see each section's [host ...] line"]
    parts = ["\n".join(head)]
    secs = res["sections"]
    d = res.get("disturbance", {})
    if "converge" in secs:
        parts.append(converge_text(secs["converge"], d.get("converge")))
    if "scale" in secs:
        parts.append(scale_text(secs["scale"], d.get("scale")))
    if "serve" in secs:
        parts.append(serve_text(secs["serve"], d.get("serve")))
    if "stream" in secs:
        parts.append(stream_text(secs["stream"], d.get("stream")))
    if "attack" in secs:
        parts.append(attack_text(secs["attack"], d.get("attack")))
    if "footprint" in secs:
        parts.append(footprint.text(secs["footprint"], _dist(d.get("footprint"))))
    if "steady" in secs:
        parts.append(steady.text(secs["steady"], _dist(d.get("steady"))))
    if "auth" in secs:
        parts.append(auth.text(secs["auth"], _dist(d.get("auth"))))
    if "micro" in secs:
        parts.append(micro_text(secs["micro"]))
    if res.get("section_wall_s"):
        parts.append("run times: " + ", ".join(f"{k} {v:.0f} s" for k, v in res["section_wall_s"].items()))
    return "\n\n".join(parts) + "\n"


def csv_text(res: dict) -> str:
    """Long format: section,case,variant,metric,value."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["section", "case", "variant", "metric", "value"])
    secs = res["sections"]
    if "converge" in secs:
        s = secs["converge"]
        for k, v in s["link"].items():
            if not isinstance(v, list):
                w.writerow(["converge", "link", "", k, v])
        w.writerow(["converge", "link", "", "lower_bound_s", s.get("lower_bound_s")])
        for row in s["summary"]:
            for k, v in row.items():
                if k not in ("loss", "variant"):
                    w.writerow(["converge", f"loss={row['loss']:g}%", row["variant"], k, v])
        for c in s["cells"]:
            for k in ("from_load_s", "from_first_sync_s", "syncs", "fraction_at_deadline", "phase_s",
                      "log_complete_from_sync_s", "lost_syncs", "tcp_pushes", "tcp_fallbacks", "error"):
                if k in c:
                    w.writerow(["converge", f"loss={c['loss']:g}%,rep={c['rep']}", c["variant"], k, c[k]])
    if "scale" in secs:
        def flat(v):
            if isinstance(v, list):
                return " ".join(str(y) for y in v)
            return v
        for x in secs["scale"]["runs"]:
            case = f"nodes={x['nodes']},p={x['period']:g}" + (f",loss={x['loss']:g}%" if x.get("loss") is not None
                                                               else "") + (f",rep={x['rep']}" if "rep" in x else "")
            for k, v in x.items():
                if k in ("nodes", "variant", "logs"):
                    continue
                if k == "late_traces":
                    for i, tr in enumerate(v):
                        w.writerow(["scale", case, x["variant"], f"late_trace{i}", trace_text(tr)])
                    continue
                if isinstance(v, dict):
                    for k2, v2 in v.items():
                        if k2 == "slow_traces":
                            for i, tr in enumerate(v2):
                                w.writerow(["scale", case, x["variant"], f"{k}.slow_trace{i}",
                                            f"update {tr.get('update')} " + trace_text(tr)])
                            continue
                        if isinstance(v2, dict):
                            for k3, v3 in v2.items():
                                w.writerow(["scale", case, x["variant"], f"{k}.{k2}.{k3}", flat(v3)])
                            continue
                        w.writerow(["scale", case, x["variant"], f"{k}.{k2}", flat(v2)])
                    continue
                w.writerow(["scale", case, x["variant"], k, flat(v)])
    if "serve" in secs:
        for x in secs["serve"]["runs"]:
            for k, v in x.items():
                if k not in ("records", "variant"):
                    w.writerow(["serve", f"records={x['records']}", x["variant"], k, v])
    if "stream" in secs:
        st = secs["stream"]
        for x in st.get("ours", []) + ([st["debian"]] if st.get("debian") else []):
            for k, v in x.items():
                if k not in ("variant", "logs"):
                    w.writerow(["stream", f"{x.get('bytes')}B@{x.get('rate')}", x["variant"], k, v])
    if "attack" in secs:
        for x in secs["attack"]["runs"]:
            for k, v in x.items():
                if k in ("attack", "variant", "label", "timeline_s_fds_rssmb", "logs"):
                    continue
                if isinstance(v, dict):
                    for k2, v2 in v.items():
                        w.writerow(["attack", x["attack"], x["variant"], f"{k}.{k2}",
                                    " ".join(str(y) for y in v2) if isinstance(v2, list) else v2])
                    continue
                if isinstance(v, list):
                    v = " ".join(str(y) for y in v)
                w.writerow(["attack", x["attack"], x["variant"], k, v])
    if "footprint" in secs and "binary" in secs["footprint"]:
        for row in footprint.csv_rows(secs["footprint"]):
            w.writerow(["footprint", *row])
    if "steady" in secs:
        for x in secs["steady"].get("runs", []):
            for k in ("bytes_per_s", "primary_cpu_ms_per_s", "settled_s", "still_held", "error"):
                if k in x:
                    w.writerow(["steady", "33:10", x["variant"], k, x[k]])
    if "auth" in secs:
        for row in auth.csv_rows(secs["auth"]):
            w.writerow(["auth", *row])
    if "micro" in secs and "benchmarks" in secs["micro"]:
        for b in secs["micro"]["benchmarks"]:
            for k in ("real_ns", "cpu_ns", "bytes_per_second"):
                w.writerow(["micro", b["name"], "ours", k, b.get(k)])
    return buf.getvalue()
