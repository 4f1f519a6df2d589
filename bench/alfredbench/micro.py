"""Optional: summary of build/micro_bench (Google Benchmark, in-process costs
of our protocol core; Debian's daemon has no equivalent)."""

from __future__ import annotations

import json
import subprocess

from .common import log


def run(cfg, bins) -> dict:
    if not bins.micro:
        return {"error": "build/micro_bench not found"}
    log("micro: build/micro_bench")
    cp = subprocess.run([bins.micro, "--benchmark_format=json", f"--benchmark_min_time={cfg.micro_min_time}"],
                        capture_output=True, text=True, timeout=600)
    if cp.returncode != 0:
        return {"error": cp.stderr[-500:]}
    data = json.loads(cp.stdout)
    rows = []
    for b in data.get("benchmarks", []):
        rows.append({"name": b["name"], "real_ns": round(b["real_time"] * {"ns": 1, "us": 1e3, "ms": 1e6}
                                                         .get(b.get("time_unit", "ns"), 1), 1),
                     "cpu_ns": round(b["cpu_time"] * {"ns": 1, "us": 1e3, "ms": 1e6}
                                     .get(b.get("time_unit", "ns"), 1), 1),
                     "bytes_per_second": b.get("bytes_per_second"),
                     "iterations": b.get("iterations")})
    return {"benchmarks": rows, "context": {k: data.get("context", {}).get(k)
                                            for k in ("num_cpus", "mhz_per_cpu", "library_build_type")}}
