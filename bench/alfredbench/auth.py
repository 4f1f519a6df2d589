"""Section 8: authenticated meshes (issue 11's targets).

Part 1, the cost of keys: the 33-node scale scenario (3 primaries + 30
secondaries, MTU 1280, LOSS frame loss on every downlink, -p PERIOD, one
SIZE-byte record per node) run in one lab, in turn, with Debian's alfred,
ours without keys and ours with `--keyfile` (every node the same key).
Ours runs without -t in both of its variants: a keyed daemon refuses -t
(TCP is not authenticated yet), so the fair comparison is the same UDP
transport sealed and unsealed. Measured over [t0, t0 + WINDOW] (t0 = every
record set, as in section 2):
  - CPU per primary: perf task-clock of the 3 primaries, mean;
  - wire bytes: mesh0 tx_bytes summed over all 33 nodes, headers included;
  - the time until every primary holds every record.
Targets: keyed CPU at most 1.1x and keyed wire bytes at most 1.05x of the
unkeyed run.

Part 2, a flood of forged datagrams: 3 honest nodes (two primaries, one
secondary) and an attacker on one clean segment. The attacker first
listens to the mesh for one sealed announcement (so it knows the key id
in use, as anyone on the link can), then for FLOOD seconds sends forged
sealed datagrams as fast as its socket takes them to the first primary:
the right key id, its own MAC (past the MAC check), counters ahead of the
replay window, garbage where the ciphertext goes, so that each one costs
the receiver its key lookup and a full tag check, the most a forgery can
cost. Two sizes: small (100 B) and one frame (1,200 B). The same flood is
sent to Debian's alfred, which drops the unknown packet type. Measured
during the flood: an honest `alfred -r 64` on the victim every 0.2 s
(latency p50/max, failures = non-zero exit, a missing record or > 1 s),
whether a record changed on the secondary during the flood reaches the
victim, and the victim's CPU (perf task-clock, ms per s).
Target: the honest `alfred -r` answers in under 1 s throughout; CPU is
reported.
"""

from __future__ import annotations

import json
import os
import random
import re
import sys
import threading
import time

from .attack import Prober
from .common import (LinkParams, TaskClock, daemon_pid, fmt, fmt_ratio, log, new_lab, parse_answer, push, ratio,
                     request_raw, table)
from .scale import _start_mesh, _stop_mesh, set_one_record_each, watch_primaries
from .steady import _tx_bytes, _verdict, primary_cpu_ms_per_s

NODES = 33
CPU_TARGET = 1.10
BYTES_TARGET = 1.05
PROBE_LIMIT_S = 1.0
FLOOD_SIZES = {"small": 100, "frame": 1200}
STATS_RE = re.compile(r"auth: sealed (\d+), opened (\d+), plain taken (\d+); refused: (.*)")

# Run by the attacker, inside its namespace: `capture SECONDS` prints the hex
# of the first sealed datagram heard on alfred's port, `flood TARGET SECONDS
# SIZE HEAD` sends forged ones and prints what it sent as json.
ATTACKER = r'''
import json, os, select, socket, struct, sys, time
PORT, IFACE = 16962, "mesh0"
scope = socket.if_nametoindex(IFACE)
if sys.argv[1] == "capture":
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, IFACE.encode())
    s.bind(("::", PORT, 0, 0))
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP,
                 socket.inet_pton(socket.AF_INET6, "ff02::1") + struct.pack("@I", scope))
    end = time.monotonic() + float(sys.argv[2])
    while time.monotonic() < end:
        r, _, _ = select.select([s], [], [], max(0.0, end - time.monotonic()))
        if not r:
            break
        d = s.recv(65535)
        if len(d) >= 62 and d[0] == 0xa5 and d[1] == 0x41:
            print(d.hex())
            break
    sys.exit(0)
target, seconds, size, head = sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
head = bytearray(bytes.fromhex(head)[:22]) if head != "-" else bytearray(b"\xa5\x41\0\0" + os.urandom(4) + bytes(14))
with open("/sys/class/net/%s/address" % IFACE) as f:
    head[8:14] = bytes.fromhex(f.read().strip().replace(":", ""))
d = bytearray(bytes(head) + os.urandom(max(0, size - 22)))
struct.pack_into("!H", d, 2, len(d) - 4)
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, IFACE.encode())
dst = (target, PORT, 0, scope)
counter = int.from_bytes(os.urandom(4), "big") << 32
n = 0
t0 = time.monotonic()
end = t0 + seconds
while True:
    if n & 255 == 0 and time.monotonic() >= end:
        break
    counter += 1
    struct.pack_into("!Q", d, 14, counter)
    d[22:46] = os.urandom(24) if n & 15 == 0 else d[22:46]
    try:
        s.sendto(d, dst)
        n += 1
    except OSError:
        pass
print(json.dumps({"sent": n, "seconds": round(time.monotonic() - t0, 3), "bytes": len(d)}))
'''


def _keyfile(lab) -> str:
    path = os.path.join(lab.dir, "bench.keys")
    with open(path, "w") as f:
        f.write("# benchmark mesh key\n" + os.urandom(32).hex() + "\n")
    os.chmod(path, 0o600)
    return path


def _flags(variant: str, keyfile: str) -> list[str]:
    return ["--keyfile", keyfile] if variant == "ours-keyed" else []


def _binary(bins, variant: str) -> str:
    return bins.debian if variant == "debian" else bins.ours


def _auth_stats(nd) -> dict[str, int]:
    try:
        with open(nd.err_log, errors="replace") as f:
            m = STATS_RE.findall(f.read())
    except OSError:
        return {}
    if not m:
        return {}
    sealed, opened, plain, refused = m[-1]
    out = {"sealed": int(sealed), "opened": int(opened), "plain taken": int(plain)}
    for part in refused.split(", "):
        name, _, k = part.rpartition(" ")
        if k.isdigit():
            out[name] = int(k)
    return out


# ------------------------------------------------------------------ part 1

def cost_run(cfg, bins, lab, variant: str, keyfile: str) -> dict:
    P, W = cfg.auth_period, cfg.auth_window
    flags = _flags(variant, keyfile)
    res = {"variant": variant, "nodes": NODES, "period": P, "loss": cfg.scale_loss, "size": cfg.scale_size,
           "window_s": W, "flags": " ".join(flags)}
    try:
        pids = _start_mesh(lab, _binary(bins, variant), flags, P, NODES, 4711)
        time.sleep(max(3.0, 1.25 * P))
        lab.check_daemons()
        expected = set_one_record_each(lab, random.Random(1111), cfg.scale_size)
        t0 = time.monotonic()
        b0 = _tx_bytes(lab)
        tc = TaskClock([pids[i] for i in (1, 2, 3)]).start()
        conv, have, _ = watch_primaries(lab, expected, t0, t0 + W, cfg.interval)
        rest = t0 + W - time.monotonic()
        if rest > 0:
            time.sleep(rest)
        cpu = tc.stop()
        dt = time.monotonic() - t0
        res["bytes_per_s"] = round((_tx_bytes(lab) - b0) / dt, 1)
        res["primary_cpu_ms_per_s"] = primary_cpu_ms_per_s(cpu, pids, dt)
        times = [conv.get(i) for i in (1, 2, 3)]
        res["converged"] = all(t is not None for t in times)
        res["mesh_s"] = round(max(times), 2) if res["converged"] else None
        res["records_at_end"] = [have.get(i, 0) for i in (1, 2, 3)]
        lab.check_daemons()
    except Exception as e:  # noqa: BLE001 - recorded
        res["error"] = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
    finally:
        _stop_mesh(lab)
    if variant == "ours-keyed" and "error" not in res:
        st = [_auth_stats(lab.node(i)) for i in (1, 2, 3)]
        res["primary_auth_stats"] = st
        refused = sum(v for s in st for k, v in s.items() if k not in ("sealed", "opened", "plain taken"))
        res["primary_refused"] = refused
    return res


# ------------------------------------------------------------------ part 2

def _attacker(nd, *args, timeout: float) -> str:
    cp = nd.exec([sys.executable, "-c", ATTACKER, *args], check=False, timeout=timeout)
    if cp.returncode != 0:
        raise RuntimeError(f"attacker {args[0]}: {cp.stderr.decode(errors='replace')[-300:]}")
    return cp.stdout.decode().strip()


def flood_run(cfg, bins, lab, variant: str, size_name: str, keyfile: str) -> dict:
    P, D = 1.0, cfg.auth_flood
    flags = _flags(variant, keyfile)
    victim, other, sec, att = lab.nodes
    res = {"variant": variant, "flood": size_name, "datagram_bytes": FLOOD_SIZES[size_name], "seconds": D,
           "flags": " ".join(flags)}
    binp = _binary(bins, variant)
    try:
        victim.start(binp, primary=True, period=P, flags=flags, wait=False)
        other.start(binp, primary=True, period=P, flags=flags, wait=False)
        sec.start(binp, primary=False, period=P, flags=flags, wait=False)
        for nd in (victim, other, sec):
            nd.wait_ready(30)
        time.sleep(2.5 * P)
        for nd in (victim, other, sec):
            push(nd.sock, 64, f"honest record of {nd.name}".encode())
        head = "-"
        if variant == "ours-keyed":
            head = _attacker(att, "capture", "5", timeout=30) or "-"
            res["key_id_learnt"] = head != "-"
        end = time.monotonic() + 15
        while time.monotonic() < end and len(parse_answer(request_raw(victim.sock, 64, 10.0), 64)) < 3:
            time.sleep(0.2)
        pid = daemon_pid(victim)
        srcs = [nd.mac for nd in (victim, other, sec)]
        prober = Prober(victim, binp, srcs, 0.2, PROBE_LIMIT_S)
        out: dict = {}

        def flood():
            try:
                out.update(json.loads(_attacker(att, "flood", victim.ll6, str(D), str(FLOOD_SIZES[size_name]),
                                                head, timeout=D + 30)))
            except Exception as e:  # noqa: BLE001 - recorded
                out["error"] = str(e)[:300]
        tc = TaskClock([pid]).start()
        t0 = time.monotonic()
        th = threading.Thread(target=flood, daemon=True)
        th.start()
        prober.start()
        # an honest change while the flood runs: does it still get through?
        time.sleep(min(2.0, D / 3))
        changed = f"changed during the flood, {size_name}".encode()
        t_set = time.monotonic()
        push(sec.sock, 64, changed)
        mac = bytes.fromhex(sec.mac.replace(":", ""))
        res["honest_update_s"] = None
        while time.monotonic() < t0 + D:
            try:
                if parse_answer(request_raw(victim.sock, 64, 5.0), 64).get(mac) == changed:
                    res["honest_update_s"] = round(time.monotonic() - t_set, 2)
                    break
            except OSError:
                pass
            time.sleep(0.1)
        th.join(D + 40)
        dt = time.monotonic() - t0
        cpu = tc.stop()
        prober.stop()
        res.update(prober.summary())
        if "error" in out:
            raise RuntimeError(out["error"])
        res["sent"] = out.get("sent")
        res["sent_per_s"] = round(out["sent"] / out["seconds"]) if out.get("seconds") else None
        res["victim_cpu_ms_per_s"] = round(cpu.get(pid, 0.0) * 1000 / dt, 1) if pid in cpu else None
        lab.check_daemons()
    except Exception as e:  # noqa: BLE001 - recorded
        res["error"] = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
    finally:
        for nd in (victim, other, sec):
            try:
                nd.stop(timeout=3)
            except Exception:  # noqa: BLE001
                pass
    if variant == "ours-keyed":
        st = _auth_stats(victim)
        res["victim_auth_stats"] = st
        res["refused_bad_tag"] = st.get("bad tag")
    return res


# ------------------------------------------------------------------ section

def run(cfg, bins) -> dict:
    cost, floods = [], []
    lab = new_lab(NODES, LinkParams(loss=cfg.scale_loss, mtu=1280))
    try:
        keyfile = _keyfile(lab)
        for rep in range(cfg.auth_reps):
            for variant in ("debian", "ours", "ours-keyed"):
                log(f"section 8: {NODES} nodes, {variant}, {cfg.scale_loss:g}% loss, -p {cfg.auth_period:g}, "
                    f"run {rep + 1}/{cfg.auth_reps}")
                r = cost_run(cfg, bins, lab, variant, keyfile)
                r["rep"] = rep
                log("  " + (f"ERROR {r['error']}" if "error" in r else
                            f"mesh {r['mesh_s']} s (records held {r['records_at_end']}), {r['bytes_per_s']} B/s "
                            "on the wire, CPU per primary "
                            f"{r['primary_cpu_ms_per_s']} ms/s"))
                cost.append(r)
    finally:
        lab.close()
    lab = new_lab(4, LinkParams(mtu=1280))
    try:
        keyfile = _keyfile(lab)
        for size_name in FLOOD_SIZES:
            for variant in ("debian", "ours-keyed"):
                log(f"section 8: flood of forged {FLOOD_SIZES[size_name]} B datagrams, {variant}, "
                    f"{cfg.auth_flood:g} s")
                r = flood_run(cfg, bins, lab, variant, size_name, keyfile)
                log("  " + (f"ERROR {r['error']}" if "error" in r else
                            f"{r['sent_per_s']} forged/s; alfred -r p50 {r['probe_p50_ms']} max "
                            f"{r['probe_max_ms']} ms, {r['probe_failures']} failure(s); honest update "
                            f"{r['honest_update_s']} s; victim CPU {r['victim_cpu_ms_per_s']} ms/s"))
                floods.append(r)
    finally:
        lab.close()
    return {"cost": cost, "flood": floods,
            "config": {"nodes": NODES, "period": cfg.auth_period, "loss": cfg.scale_loss, "size": cfg.scale_size,
                       "window": cfg.auth_window, "reps": cfg.auth_reps, "flood_s": cfg.auth_flood,
                       "flood_sizes": FLOOD_SIZES}}


# ------------------------------------------------------------------ report

def _mean(runs: list[dict], key: str):
    xs = [r[key] for r in runs if r.get(key) is not None]
    return sum(xs) / len(xs) if xs else None


def text(r: dict, dist: str) -> str:
    c = r["config"]
    out = [f"8. AUTHENTICATED MESHES (issue 11): {c['nodes']} nodes (3 primaries), one {c['size']} B record each, "
           f"-p {c['period']:g}, {c['loss']:g}% loss, MTU 1280, {c['reps']} run(s) per variant, measured over "
           f"{c['window']:g} s after every record was set (ours without -t: a keyed daemon refuses it)", dist]
    by = {v: [x for x in r["cost"] if x["variant"] == v and "error" not in x] for v in ("debian", "ours", "ours-keyed")}
    errs = [x["error"] for x in r["cost"] if "error" in x]
    if errs:
        out.append("ERROR " + errs[0])
    deb, plain, keyed = ({k: _mean(by[v], k) for k in ("primary_cpu_ms_per_s", "bytes_per_s", "mesh_s")}
                         for v in ("debian", "ours", "ours-keyed"))
    rows = []
    rc = ratio(keyed["primary_cpu_ms_per_s"], plain["primary_cpu_ms_per_s"])
    rows.append(["CPU per primary, ms/s", fmt(keyed["primary_cpu_ms_per_s"], 2), fmt(plain["primary_cpu_ms_per_s"], 2),
                 fmt(deb["primary_cpu_ms_per_s"], 2), fmt_ratio(rc),
                 _verdict(None if rc is None else rc <= CPU_TARGET, f"<= {CPU_TARGET:g}x"),
                 "perf task-clock, mean of the 3 primaries"])
    rb = ratio(keyed["bytes_per_s"], plain["bytes_per_s"])
    rows.append(["wire bytes/s, all nodes", fmt(keyed["bytes_per_s"], 0), fmt(plain["bytes_per_s"], 0),
                 fmt(deb["bytes_per_s"], 0), fmt_ratio(rb),
                 _verdict(None if rb is None else rb <= BYTES_TARGET, f"<= {BYTES_TARGET:g}x"),
                 "mesh0 tx_bytes summed, headers included"])
    rows.append(["every primary holds all, s", fmt(keyed["mesh_s"], 2), fmt(plain["mesh_s"], 2),
                 fmt(deb["mesh_s"], 2), fmt_ratio(ratio(keyed["mesh_s"], plain["mesh_s"])), "",
                 "mean of the converged runs"])
    refused = [x.get("primary_refused") for x in by["ours-keyed"]]
    rows.append(["refused by keyed primaries", " ".join(str(x) for x in refused), "", "", "", "",
                 "honest mesh: every count should be 0"])
    out.append(table(rows, ["row", "ours keyed", "ours unkeyed", "Debian", "keyed/unkeyed", "target", "notes"]))
    out.append(f"flood of forged sealed datagrams at the first of two primaries ({c['flood_s']:g} s each, as fast as "
               "the attacker's socket takes them; right key id, its own MAC, fresh counters, garbage ciphertext)")
    rows = []
    for x in r["flood"]:
        name = f"{x['flood']} ({x['datagram_bytes']} B), {x['variant']}"
        if "error" in x:
            rows.append([name, "ERROR " + x["error"][:80], "", "", "", "", ""])
            continue
        ok = x.get("probe_failures") == 0 and (x.get("probe_max_ms") or 0) < PROBE_LIMIT_S * 1000
        rows.append([name, fmt(x.get("sent_per_s"), 0),
                     f"{fmt(x.get('probe_p50_ms'), 1)} / {fmt(x.get('probe_max_ms'), 1)}",
                     f"{x.get('probe_failures')}/{x.get('probes')}",
                     fmt(x.get("honest_update_s"), 2) if x.get("honest_update_s") is not None else "not arrived",
                     fmt(x.get("victim_cpu_ms_per_s"), 1),
                     _verdict(ok, "alfred -r < 1 s") + (f"; bad tag {x['refused_bad_tag']}"
                                                        if x.get("refused_bad_tag") is not None else "")])
    out.append(table(rows, ["flood", "forged/s", "alfred -r p50 / max ms", "failures", "honest update s",
                            "victim CPU ms/s", "target"]))
    return "\n".join(x for x in out if x)


def csv_rows(r: dict):
    for x in r.get("cost", []):
        for k in ("primary_cpu_ms_per_s", "bytes_per_s", "mesh_s", "converged", "primary_refused", "error"):
            if k in x:
                yield [f"{x['nodes']}:{x['period']:g}:{x['loss']:g}", x["variant"], k, x[k]]
    for x in r.get("flood", []):
        for k in ("sent_per_s", "probe_p50_ms", "probe_max_ms", "probe_failures", "probes", "honest_update_s",
                  "victim_cpu_ms_per_s", "refused_bad_tag", "error"):
            if k in x:
                yield [f"flood-{x['flood']}", x["variant"], k, x[k]]
