"""Section 3: cost of serving `-r` requests over the unix socket.

Each variant gets its own 1-node lab (mesh0 exists, nobody else on the
link; Debian 2023.0 refuses pushes with `-i none`) with one primary daemon
(-p 10, no other flags) under `/usr/bin/time -v` (cross-check of peak RSS
and CPU).  Both daemons run at the same time and are measured side by side.

For each record count N: fresh daemons; N records of type 64, SIZE
printable bytes each, each pushed raw over the unix socket with its own
source MAC (one record per connection); wait until a request returns all N;
RSS after load; reset VmHWM (/proc/pid/clear_refs); WARMUP requests; then
REQUESTS sequential raw requests to each daemon, alternating between the two
(connect, send the request, read until the daemon closes), each timed in
Python (p50/p99 = round trip incl. connect and the whole answer); daemon CPU
over those requests = `perf stat -e task-clock` attached to both daemons
(exact; utime+stime from /proc, counted in 10 ms ticks, kept as a
cross-check); peak RSS = max of VmHWM after the
load, VmHWM while serving and time -v's maximum RSS.  Then CLIENT_RUNS
`alfred -r 64` processes per daemon (its own client binary, stdout to
/dev/null) are timed, alternating too, for what a shell user sees.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import tempfile
import time

from .common import (LinkParams, daemon_pid, log, new_lab, percentile, printable, proc_cpu_s, proc_mem_kb,
                     push_all, request_raw, reset_hwm, source_mac, TaskClock)


def _time_v(path: str) -> dict:
    out = {}
    try:
        with open(path) as f:
            txt = f.read()
    except OSError:
        return out
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", txt)
    if m:
        out["time_maxrss_kb"] = int(m.group(1))
    u = re.search(r"User time \(seconds\): ([\d.]+)", txt)
    s = re.search(r"System time \(seconds\): ([\d.]+)", txt)
    if u and s:
        out["time_cpu_s"] = round(float(u.group(1)) + float(s.group(1)), 3)
    return out


VARIANTS = ("debian", "ours")


class Served:
    """One daemon of one variant in its own 1-node lab."""

    def __init__(self, cfg, lab, variant: str, binp: str, nrec: int, tmpdir: str):
        self.cfg, self.lab, self.variant, self.bin, self.nrec = cfg, lab, variant, binp, nrec
        self.nd = lab.node(1)
        self.tv = os.path.join(tmpdir, f"time-{variant}-{nrec}.txt")
        self.res = {"variant": variant, "records": nrec, "size": cfg.serve_size, "requests": cfg.serve_requests}
        self.lat: list[float] = []
        self.cl: list[float] = []
        self.pid = None

    def start(self):
        self.nd.start(self.bin, primary=True, period=10, wrapper=["/usr/bin/time", "-v", "-o", self.tv])
        self.pid = daemon_pid(self.nd)

    def load(self):
        rnd = random.Random(self.nrec)
        self.expected = {source_mac(k + 1, 0xc0): printable(rnd, self.cfg.serve_size) for k in range(self.nrec)}
        t = time.monotonic()
        self.res["repeated_pushes"] = push_all(self.nd.sock, 64, self.expected)
        self.res["load_s"] = round(time.monotonic() - t, 3)

    def after_load(self):
        mem = proc_mem_kb(self.pid)
        self.res["rss_after_load_kb"] = mem.get("VmRSS")
        self.res["hwm_after_load_kb"] = mem.get("VmHWM")
        self.res["rss_anon_after_load_kb"] = mem.get("RssAnon")
        self.res["rss_file_after_load_kb"] = mem.get("RssFile")
        self.res["hwm_reset"] = reset_hwm(self.pid)

    def request(self):
        s = time.perf_counter()
        b = request_raw(self.nd.sock, 64)
        self.lat.append(time.perf_counter() - s)
        self.res["answer_bytes"] = len(b)

    def client(self):
        s = time.perf_counter()
        cp = subprocess.run([self.bin, "-r", "64", "-u", self.nd.sock], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, timeout=60)
        self.cl.append(time.perf_counter() - s)
        if cp.returncode != 0:
            raise RuntimeError(f"alfred -r failed: {cp.stderr.decode(errors='replace')[:200]}")

    def stop(self):
        # signal the daemon itself, so /usr/bin/time reports and exits
        if self.pid:
            try:
                os.kill(self.pid, 15)
                self.nd.proc.wait(5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        self.nd.stop(timeout=5)
        self.res.update(_time_v(self.tv))
        peaks = [x for x in (self.res.get("hwm_after_load_kb"), self.res.get("hwm_serving_kb"),
                             self.res.get("time_maxrss_kb")) if x is not None]
        if peaks:
            self.res["peak_rss_kb"] = max(peaks)


def run_size(cfg, labs, bins, nrec: int, tmpdir: str) -> list[dict]:
    """Both daemons up at the same time; requests alternate between them
    (debian, ours, ours, debian, ...) so that other load on the host hits
    both alike."""
    sv = [Served(cfg, labs[v], v, bins.debian if v == "debian" else bins.ours, nrec, tmpdir) for v in VARIANTS]
    try:
        for x in sv:
            x.start()
        for x in sv:
            x.load()
        time.sleep(0.3)
        for x in sv:
            x.after_load()
        for _ in range(cfg.serve_warmup):
            for x in sv:
                x.request()
        for x in sv:
            x.lat = []
        # CPU is accounted in 10 ms ticks: with few records, measure over more requests
        nreq = cfg.serve_requests * (10 if nrec <= 100 else 1)
        tc = TaskClock([x.pid for x in sv]).start()
        cpu0 = {x.variant: proc_cpu_s(x.pid) for x in sv}
        t0 = time.perf_counter()
        for i in range(nreq):
            for x in (sv if i % 2 == 0 else sv[::-1]):
                x.request()
        wall = time.perf_counter() - t0
        cpu1 = {x.variant: proc_cpu_s(x.pid) for x in sv}
        exact = tc.stop()
        for x in sv:
            ticks = cpu1[x.variant] - cpu0[x.variant]
            cpu = exact.get(x.pid, ticks) if exact else ticks
            mem = proc_mem_kb(x.pid)
            r = x.res
            r["wall_both_s"] = round(wall, 3)
            r["requests"] = nreq
            r["cpu_source"] = "perf task-clock" if exact else "utime+stime"
            r["cpu_s"] = round(cpu, 4)
            r["cpu_s_ticks"] = round(ticks, 3)
            r["cpu_s_per_1000"] = round(cpu * 1000 / nreq, 4)
            r["p50_ms"] = round(percentile(x.lat, 50) * 1000, 3)
            r["p99_ms"] = round(percentile(x.lat, 99) * 1000, 3)
            r["max_ms"] = round(max(x.lat) * 1000, 3)
            r["hwm_serving_kb"] = mem.get("VmHWM") if r["hwm_reset"] else None
            r["rss_end_kb"] = mem.get("VmRSS")
        for i in range(cfg.serve_client_runs):
            for x in (sv if i % 2 == 0 else sv[::-1]):
                x.client()
        for x in sv:
            x.res["client_runs"] = len(x.cl)
            x.res["client_p50_ms"] = round(percentile(x.cl, 50) * 1000, 3) if x.cl else None
            x.res["client_p99_ms"] = round(percentile(x.cl, 99) * 1000, 3) if x.cl else None
        for x in sv:
            x.lab.check_daemons()
    finally:
        for x in sv:
            try:
                x.stop()
            except Exception as e:  # noqa: BLE001
                x.res.setdefault("error", f"stop: {e}")
    return [x.res for x in sv]


def run(cfg, bins) -> dict:
    out = []
    tmpdir = tempfile.mkdtemp(prefix="alfred-bench-serve-")
    labs = {}
    try:
        for v in VARIANTS:
            labs[v] = new_lab(1, LinkParams())
        for nrec in cfg.serve_records:
            log(f"section 3: {nrec} records x {cfg.serve_size} B, {cfg.serve_requests} requests to each daemon, "
                f"alternating")
            try:
                rs = run_size(cfg, labs, bins, nrec, tmpdir)
            except Exception as e:  # noqa: BLE001 - recorded
                rs = [{"variant": v, "records": nrec, "error": str(e).splitlines()[0][:300]} for v in VARIANTS]
            for r in rs:
                log(f"  {r['variant']:6s} " + (f"ERROR {r['error']}" if "error" in r else
                                               f"CPU {r['cpu_s_per_1000']}s/1000, p50 {r['p50_ms']}ms "
                                               f"p99 {r['p99_ms']}ms, peak RSS {r.get('peak_rss_kb')} kB, "
                                               f"alfred -r p50 {r['client_p50_ms']}ms"))
            out.extend(rs)
    finally:
        for lab in labs.values():
            lab.close()
        subprocess.run(["rm", "-rf", tmpdir])
    return {"runs": out, "config": {"records": cfg.serve_records, "size": cfg.serve_size,
                                    "requests": cfg.serve_requests, "warmup": cfg.serve_warmup,
                                    "client_runs": cfg.serve_client_runs}}
