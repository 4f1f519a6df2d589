"""Command line of the lab: `lab/alfred-lab SUBCOMMAND ...` (see --help)."""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import signal
import sys
import time

from .converge import wait_converged
from .lab import (IPV4_GROUP, DaemonCrashed, Lab, LinkParams, alfred_bin, cleanup_stale,
                  debian_bin, preflight)
from .util import LabError, eprint

MAX_RECORD = 65509  # the reference client truncates -s input to this many bytes


def _add_mesh_args(p: argparse.ArgumentParser, *, primaries: int, secondaries: int,
                   loss: float, dup: float, delay: float, flags: str):
    g = p.add_argument_group("mesh")
    g.add_argument("--primaries", type=int, default=primaries, help="number of -m daemons (nodes n1..nP)")
    g.add_argument("--secondaries", type=int, default=secondaries, help="number of secondary daemons")
    g.add_argument("--link", choices=("vde", "veth"), default="vde",
                   help="vde: vde_switch + wirefilter (loss/dup/delay/rate); veth: bridge + nftables (loss only)")
    g.add_argument("--hub", action="store_true", help="run the central vde_switch as a hub (-x)")
    g.add_argument("--loss", type=float, default=loss, help="%% frames lost per receiver (default %(default)s)")
    g.add_argument("--dup", type=float, default=dup, help="%% frames duplicated (default %(default)s)")
    g.add_argument("--delay", type=float, default=delay, help="one-way delay in ms (default %(default)s)")
    g.add_argument("--jitter", type=float, default=0.0, help="+/- uniform delay variation in ms")
    g.add_argument("--rate", default=None,
                   help="per-node wire bandwidth in bytes/s, wirefilter syntax (e.g. 125000, 128K, 1M)")
    g.add_argument("--mtu", type=int, default=1280, help="MTU of mesh0 (default %(default)s)")
    d = p.add_argument_group("daemons")
    d.add_argument("--bin", default=None, help="alfred binary (default $ALFRED_BIN or /work/main/build/alfred)")
    d.add_argument("--alt-bin", default=None, help="second binary (default $DEBIAN_ALFRED or /usr/sbin/alfred)")
    d.add_argument("--alt-nodes", default="",
                   help="comma separated node numbers that run --alt-bin instead (mixed meshes), e.g. 2,4")
    d.add_argument("--flags", default=flags,
                   help="extra daemon flags for --bin, shell-quoted (default %(default)r; use '' for none)")
    d.add_argument("--alt-flags", default="", help="extra daemon flags for --alt-bin")
    d.add_argument("--period", default="1", help="sync period -p in seconds (default %(default)s)")
    d.add_argument("-4", "--ipv4", nargs="?", const=IPV4_GROUP, default=None, metavar="GROUP",
                   help=f"run the daemons with -4 GROUP (default group {IPV4_GROUP})")
    d.add_argument("--settle", type=float, default=None,
                   help="seconds to wait after daemon start before loading data "
                        "(default: 1.5 sync periods, so secondaries heard a primary)")
    m = p.add_argument_group("measurement")
    m.add_argument("--deadline", type=float, default=30.0, help="give up after this many seconds")
    m.add_argument("--interval", type=float, default=0.1, help="poll interval per node in seconds")
    m.add_argument("--keep-logs", default=None, metavar="DIR", help="copy all logs to DIR/<run id> at the end")
    m.add_argument("--show-logs", action="store_true", help="print daemon logs at the end")
    m.add_argument("--json-only", action="store_true", help="print only the RESULT line")


def _parallel(fn, items):
    """fn over items in daemon threads (never blocks interpreter exit, so a
    signal leads straight to the lab's cleanup)."""
    import threading
    res = [None] * len(items)

    def work(i, it):
        try:
            res[i] = fn(it)
        except Exception as e:  # reported by the caller
            res[i] = e

    ths = [threading.Thread(target=work, args=(i, it), daemon=True) for i, it in enumerate(items)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    for r in res:
        if isinstance(r, Exception):
            raise r
    return res


def _params(a) -> LinkParams:
    return LinkParams(loss=a.loss, dup=a.dup, delay_ms=a.delay, jitter_ms=a.jitter, rate=a.rate, mtu=a.mtu)


def _plan(a):
    n = a.primaries + a.secondaries
    if n < 1:
        raise LabError("need at least one node")
    main_bin = a.bin or alfred_bin()
    alt_bin = a.alt_bin or debian_bin()
    alt = {int(x) for x in a.alt_nodes.split(",") if x.strip()} if a.alt_nodes else set()
    bins, flags, labels = [], {}, []
    for i in range(1, n + 1):
        if i in alt:
            b, fl, who = alt_bin, shlex.split(a.alt_flags), "alt"
        else:
            b, fl, who = main_bin, shlex.split(a.flags), "main"
        bins.append(b)
        flags[i] = fl
        labels.append(f"{who}/{'primary' if i <= a.primaries else 'secondary'}")
    for b in set(bins):
        if not os.path.exists(b):
            raise LabError(f"alfred binary not found: {b} (set --bin/--alt-bin or ALFRED_BIN/DEBIAN_ALFRED)")
    return n, bins, flags, labels


def _start(lab: Lab, a, bins, flags, labels, say):
    for nd, lbl in zip(lab.nodes, labels):
        nd.label = lbl
    lab.start_all(bins, primaries=range(1, a.primaries + 1), period=a.period, ipv4=a.ipv4, flags=flags)
    for nd in lab.nodes:
        say(f"  {nd.name}: {nd.label:15s} mac {nd.mac}  {nd.ll6:26s} {nd.ip4:15s} $ {' '.join(nd.argv)}")
    settle = a.settle if a.settle is not None else max(1.0, 1.5 * float(a.period))
    say(f"waiting {settle:g}s for primary announcements ...")
    time.sleep(settle)
    lab.check_daemons()


def _finish(lab: Lab, a, res, extra, say) -> int:
    if not a.json_only:
        say("")
        say(res.table())
    crashed = [nd.name for nd in lab.nodes if nd.proc is not None and nd.proc.poll() is not None]
    if a.show_logs or crashed or not res.all_converged:
        if not a.json_only:
            say("\n--- daemon logs ---")
            say(lab.daemon_logs(20))
    print(res.result_line(**extra), flush=True)
    return 0 if res.all_converged and not crashed else 1


def cmd_run(a, demo: bool = False) -> int:
    say = (lambda s: None) if a.json_only else (lambda s: print(s, flush=True))
    n, bins, flags, labels = _plan(a)
    params = _params(a)
    with Lab(n, link=a.link, params=params, hub_mode=a.hub, keep_logs=a.keep_logs, log=say) as lab:
        say(f"run {lab.run_id}: {a.primaries} primaries + {a.secondaries} secondaries, "
            f"link {a.link} ({params.describe()}), period {a.period}s"
            + (f", IPv4 group {a.ipv4}" if a.ipv4 else ", IPv6 link-local"))
        _start(lab, a, bins, flags, labels, say)
        expected: dict[int, dict[str, bytes]] = {}
        if getattr(a, "data_kb", None):
            ld = lab.node(a.load_on)
            nrec = max(1, a.records)
            total = int(a.data_kb * 1024)
            size = total // nrec
            if size > MAX_RECORD:
                raise LabError(f"{a.data_kb} KB in {nrec} records = {size} bytes/record > {MAX_RECORD}; "
                               f"use --records >= {-(-total // MAX_RECORD)}")
            if 64 + nrec - 1 > 255:
                raise LabError("at most 192 records (one per type 64..255 on the loading node)")
            rnd = random.Random(a.seed)
            for k in range(nrec):
                t = 64 + k
                payload = rnd.randbytes(size)
                ld.set(t, payload)
                expected[t] = {ld.mac: payload}
            targets = [nd for nd in lab.nodes if nd is not ld]
            say(f"loaded {nrec} records x {size} bytes ({nrec * size / 1024:.1f} KiB) on {ld.name}, "
                f"types {64}..{64 + nrec - 1}; measuring on {', '.join(t.name for t in targets) or '-'}")
        else:
            rtype = a.type
            expected[rtype] = {}
            for nd in lab.nodes:
                payload = f"hello from {nd.name} ({nd.label}) \"alfred-lab\"\n".encode()
                nd.set(rtype, payload)
                expected[rtype][nd.mac] = payload
            targets = lab.nodes
            say(f"set one type-{rtype} record on each of the {n} nodes; polling -r {rtype} on every node")
        t0 = time.monotonic()
        res = wait_converged(targets, expected, t0=t0, deadline_s=a.deadline, interval=a.interval)
        if demo and not a.json_only:
            say("\n=== each node's view ===")
            views = _parallel(lambda nd: [(t, nd.client(["-r", str(t)])) for t in expected], lab.nodes)
            for nd, per_type in zip(lab.nodes, views):
                for t, cp in per_type:
                    say(f"--- {nd.name} ({nd.label}) $ alfred -r {t}  [exit {cp.returncode}]")
                    out = cp.stdout.decode(errors="replace").rstrip("\n")
                    say(out if out else "(no records)")
                    if cp.stderr:
                        say("stderr: " + cp.stderr.decode(errors="replace").rstrip())
        extra = {
            "mode": "demo" if demo else "run", "run": lab.run_id, "link": a.link,
            "loss": a.loss, "dup": a.dup, "delay_ms": a.delay, "jitter_ms": a.jitter, "rate": a.rate,
            "mtu": a.mtu, "period": float(a.period), "primaries": a.primaries, "secondaries": a.secondaries,
            "ipv4": bool(a.ipv4), "bin": bins[0] if bins else None,
            "alt_nodes": sorted(int(x) for x in a.alt_nodes.split(",") if x.strip()) if a.alt_nodes else [],
            "flags": a.flags, "records": sum(len(v) for v in expected.values()),
            "bytes": sum(len(p) for v in expected.values() for p in v.values()),
        }
        return _finish(lab, a, res, extra, say)


def cmd_shell(a) -> int:
    n, bins, flags, labels = _plan(a)
    params = _params(a)
    with Lab(n, link=a.link, params=params, hub_mode=a.hub, keep_logs=a.keep_logs,
             log=lambda s: print(s, flush=True)) as lab:
        _start(lab, a, bins, flags, labels, print)
        print("\nmesh is up. Examples:")
        nd = lab.node(1)
        print(f"  echo hi | {nd.bin} -s 64 -u {nd.sock}")
        print(f"  {nd.bin} -r 64 -u {nd.sock}")
        print(f"  ip netns exec {nd.ns} bash")
        print(f"logs: {lab.logdir}")
        dur = a.duration
        print("press Ctrl-C to tear down" + (f" (or wait {dur:g}s)" if dur else ""), flush=True)
        try:
            end = time.monotonic() + dur if dur else None
            while end is None or time.monotonic() < end:
                time.sleep(0.5)
                lab.check_daemons()
        except KeyboardInterrupt:
            print("\ntearing down ...")
        except DaemonCrashed as e:
            print(str(e))
            return 1
    return 0


def cmd_linktest(a) -> int:
    """Measure what the emulated link really does between n1 and n2."""
    import re
    params = _params(a)
    with Lab(2, link=a.link, params=params, hub_mode=a.hub, log=lambda s: print(s, flush=True)) as lab:
        n1, n2 = lab.node(1), lab.node(2)
        cp = n1.exec(["ping", "-6", "-q", "-c", str(a.count), "-i", "0.01", "-W", "2",
                      f"{n2.ll6}%mesh0"], check=False, timeout=a.count * 0.05 + 60)
        out = cp.stdout.decode()
        m = re.search(r"(\d+) packets transmitted, (\d+) received(?:, \+(\d+) duplicates)?", out)
        rtt = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)", out)
        tx, rx, dup = (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)) if m else (0, 0, 0)
        # a round trip crosses two impaired hops (n1->n2 and n2->n1)
        rt_loss = 100.0 * (1 - rx / tx) if tx else float("nan")
        one_way = 100.0 * (1 - (rx / tx) ** 0.5) if tx else float("nan")
        mtu_ok = n1.exec(["ping", "-6", "-q", "-c", "3", "-W", "2", "-M", "do", "-s", str(a.mtu - 48),
                          f"{n2.ll6}%mesh0"], check=False).returncode == 0
        mtu_big = n1.exec(["ping", "-6", "-q", "-c", "1", "-W", "1", "-M", "do", "-s", str(a.mtu - 47),
                           f"{n2.ll6}%mesh0"], check=False).returncode == 0
        res = {"link": a.link, "configured": dataclasses_asdict(params), "sent": tx, "received": rx,
               "duplicates": dup, "round_trip_loss_pct": round(rt_loss, 2),
               "one_way_loss_pct_est": round(one_way, 2),
               "rtt_ms": {"min": float(rtt.group(1)), "avg": float(rtt.group(2)), "max": float(rtt.group(3))}
               if rtt else None,
               "mtu_payload_fits": mtu_ok, "mtu_plus_one_blocked": not mtu_big}
        print(out.strip())
        print("RESULT " + json.dumps(res, sort_keys=True))
    return 0


def dataclasses_asdict(x):
    import dataclasses
    return dataclasses.asdict(x)


def _terminate(signum, frame):
    raise SystemExit(128 + signum)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="alfred-lab",
                                 description="Mesh lab for alfred: network namespaces joined by VDE "
                                             "(or veth) links with loss/dup/delay, alfred daemons "
                                             "in them, convergence measurement.",
                                 epilog="Needs root, `ip netns`, vde2 (vde_switch, wirefilter) "
                                        "or nftables for --link veth.")
    sub = ap.add_subparsers(dest="cmd", required=True)

    d = sub.add_parser("demo", help="3 primaries + 6 secondaries of ALFRED_BIN on a lossy link; "
                                    "one record per node; each node's view and time to converge")
    _add_mesh_args(d, primaries=3, secondaries=6, loss=5, dup=1, delay=20, flags="-t")
    d.add_argument("--type", type=int, default=64, help="record type (default 64)")

    r = sub.add_parser("run", help="configurable convergence measurement")
    _add_mesh_args(r, primaries=2, secondaries=2, loss=0, dup=0, delay=0, flags="")
    r.add_argument("--type", type=int, default=64, help="record type when every node sets one (default 64)")
    r.add_argument("--data-kb", type=float, default=None,
                   help="load this much random data on one node (split into --records records of "
                        "types 64..) and measure convergence on all other nodes")
    r.add_argument("--records", type=int, default=8, help="number of records for --data-kb (default 8)")
    r.add_argument("--load-on", type=int, default=1, help="node number that loads the data (default 1)")
    r.add_argument("--seed", type=int, default=1, help="random seed for the data set")

    s = sub.add_parser("shell", help="bring a mesh up and keep it until Ctrl-C (for manual poking)")
    _add_mesh_args(s, primaries=2, secondaries=2, loss=0, dup=0, delay=0, flags="")
    s.add_argument("--duration", type=float, default=0, help="tear down after N seconds (0 = wait for Ctrl-C)")

    lt = sub.add_parser("linktest", help="2 nodes, ping n1 -> n2: measured loss/dup/rtt/MTU of the emulated link")
    _add_mesh_args(lt, primaries=0, secondaries=0, loss=0, dup=0, delay=0, flags="")
    lt.add_argument("--count", type=int, default=500, help="pings (default %(default)s, 10 ms apart)")

    sub.add_parser("check", help="only check that the lab can run here (root, netns, vde2)")
    sub.add_parser("cleanup", help="remove leftovers (namespaces, dirs, host sysctl) of dead runs")

    a = ap.parse_args(argv)
    # a shell starts background jobs with SIGINT ignored; the lab should
    # still tear down on Ctrl-C / kill -INT
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    try:
        if a.cmd == "check":
            preflight("vde")
            preflight("veth")
            print("ok: root, ip netns, vde2 and nftables available")
            return 0
        if os.geteuid() != 0:
            raise LabError("alfred-lab must run as root")
        if a.cmd == "cleanup":
            k = cleanup_stale()
            print(f"removed {k} stale run(s)")
            return 0
        cleanup_stale(log=lambda s: eprint("alfred-lab: " + s))
        if a.cmd == "demo":
            return cmd_run(a, demo=True)
        if a.cmd == "run":
            return cmd_run(a)
        if a.cmd == "shell":
            return cmd_shell(a)
        if a.cmd == "linktest":
            return cmd_linktest(a)
    except DaemonCrashed as e:
        eprint(f"alfred-lab: daemon failure: {e}")
        return 1
    except LabError as e:
        eprint(f"alfred-lab: error: {e}")
        return 2
    except KeyboardInterrupt:
        eprint("alfred-lab: interrupted, cleaned up")
        return 130
    except SystemExit as e:
        if isinstance(e.code, int) and e.code > 128:
            eprint(f"alfred-lab: terminated by signal {e.code - 128}, cleaned up")
        raise
    return 2


if __name__ == "__main__":
    sys.exit(main())
