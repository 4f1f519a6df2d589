"""Printed tables and the flat CSV of a benchmark result."""

from __future__ import annotations

import csv
import io

from .common import fmt, fmt_ratio, ratio, table


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


def scale_text(r: dict, dist: dict | None) -> str:
    c = r["config"]
    out = [f"2. SCALE: 3 primaries + N-3 secondaries, {c['loss']:g}% loss, MTU 1280, -p as listed; every node "
           f"sets one {c['size']} B record; mesh s = time until all 3 primaries hold all N records (after the last set);",
           f"   daemons started in random order over one period; window CPU = perf task-clock per daemon during the "
           f"{c['window']:g} s after the last set (same for both variants);",
           f"   life CPU = utime+stime over the daemon's whole life (start, settle, window; 10 ms ticks); peak RSS = "
           f"VmHWM; max/avg over daemons",
           _dist(dist)]
    rows = []
    runs = r["runs"]
    for x in runs:
        if "error" in x:
            rows.append([str(x["nodes"]), f"{x['period']:g}", x["variant"], "ERROR " + x["error"][:80]])
            continue
        deb = next((y for y in runs if y["nodes"] == x["nodes"] and y["period"] == x["period"]
                    and y["variant"] == "debian" and "error" not in y), None)
        vs = ""
        if x["variant"] != "debian" and deb:
            def cpu(y, role):
                return y.get(f"{role}_window_cpu_ms_avg") if y.get(f"{role}_window_cpu_ms_avg") is not None \
                    else y.get(f"{role}_cpu_s_avg")
            vs = (f"CPU/prim {fmt_ratio(ratio(cpu(x, 'primary'), cpu(deb, 'primary')))}, "
                  f"CPU/sec {fmt_ratio(ratio(cpu(x, 'secondary'), cpu(deb, 'secondary')))}, "
                  f"RSS/prim {fmt_ratio(ratio(x['primary_hwm_kb_max'], deb['primary_hwm_kb_max']))}")
        tgt = ""
        if x["variant"] == "ours-tcp":
            tgt = ("MET" if x["meets_target"] else "MISSED") + f" (<= {x['target_s']:g} s)"
        rows.append([str(x["nodes"]), f"{x['period']:g}", x["variant"],
                     f"{sum(1 for t in x['primary_converged_s'] if t is not None)}/3",
                     fmt(x["mesh_s"], 2), f"{x['record_fraction'] * 100:.1f}%",
                     _pair(x.get("primary_window_cpu_ms_max"), x.get("primary_window_cpu_ms_avg"), 0),
                     _pair(x.get("secondary_window_cpu_ms_max"), x.get("secondary_window_cpu_ms_avg"), 1),
                     _pair(x["primary_cpu_s_max"], x["secondary_cpu_s_max"]),
                     _pair(_mb(x["primary_hwm_kb_max"]), _mb(x["primary_hwm_kb_avg"]), 1),
                     _pair(_mb(x["secondary_hwm_kb_max"]), _mb(x["secondary_hwm_kb_avg"]), 1),
                     vs, tgt])
    notes = []
    for x in runs:
        if "error" in x:
            continue
        k = x.get("primaries_kernel", {})
        line = (f"   {x['nodes']} nodes -p {x['period']:g} {x['variant']}: primaries' kernels dropped "
                f"{k.get('Udp6RcvbufErrors', 0)} datagrams on full receive buffers, {k.get('Ip6ReasmFails', 0)} "
                f"reassembly failures")
        if x.get("tcp"):
            tc = x["tcp"]
            line += (f"; TCP pushes {tc['tcp_pushes']}, connects delayed >= 0.9 s by a lost SYN/SYN-ACK "
                     f"{tc['slow_connects']}, syncs skipped while the previous push still ran "
                     f"{tc['skipped_syncs']}, fallbacks {tc['fallbacks']}")
        notes.append(line)
    out.append(table(rows, ["nodes", "-p", "variant", "primaries", "mesh s", "records", "window CPU ms prim max/avg",
                            "window CPU ms sec max/avg", "life CPU s max prim/sec", "RSS MB prim max/avg", "RSS MB sec max/avg", "ours vs Debian",
                            "target"]))
    out.extend(notes)
    return "\n".join(x for x in out if x)


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
        for x in secs["scale"]["runs"]:
            for k, v in x.items():
                if k in ("nodes", "variant", "logs"):
                    continue
                if isinstance(v, list):
                    v = " ".join(str(y) for y in v)
                w.writerow(["scale", f"nodes={x['nodes']},p={x['period']:g}", x["variant"], k, v])
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
    if "micro" in secs and "benchmarks" in secs["micro"]:
        for b in secs["micro"]["benchmarks"]:
            for k in ("real_ns", "cpu_ns", "bytes_per_second"):
                w.writerow(["micro", b["name"], "ours", k, b.get(k)])
    return buf.getvalue()
