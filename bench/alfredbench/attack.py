"""Section 5: hostile peers and clients (issue 12), our daemon and Debian's
side by side under the same attack.

Each variant gets its own 3-node veth lab (the kernel bridge, as in
tests/integration/test_hostile_peers.py): n1 the victim, a primary
(`-m -p 1`; ours also `-t -d`, the tests' flags), n2 an honest secondary of
the same implementation (`-p 0.25`, ours also `-t`), n3 the attacker (no
daemon) with its own link-local address plus 20 more (`nodad`), and 600
more for the announcement flood.  The attacks are the integration tests'
(test_hostile_resources.py, test_hostile_local.py) with their parameters,
run with the same tool (tests/integration/hostile_peer_tools.py, `res` mode,
inside the attacker's namespace); the unix-socket attacks are opened by this
process.  Attacks over TCP are ours alone (Debian has no TCP port).

For every attack and variant, on a fresh victim:
  * the victim is (re)started and loaded with its honest data set: 40
    records of 50 KB (2 MB) of type 64, each pushed raw with its own source
    MAC (16 records = 800 KB for the unix-client attack, 100 = 5 MB for its
    large variant); one honest record from the secondary must arrive first;
  * idle fds = minimum over 1 s, idle RSS; VmHWM is reset (clear_refs);
  * during the attack: VmRSS, VmHWM, fd count and utime+stime of the victim
    every 100 ms; `alfred -r 64` every 200 ms against the victim's socket,
    with our client for both daemons (Debian's client reads each record with
    one read() and stops, exit 0, at the first short read: on a busy host it
    prints part of a 2 MB answer even without an attack, which would be
    counted against Debian's daemon); a probe that exits non-zero, misses a
    record of the set or takes more than 2 s is a failure, and counts as 2 s
    in the percentiles; the honest secondary sets a new type-65 record every
    2.5 s, polled on the victim (our client) for up to 5 s;
  * peak RSS = max(VmRSS samples, VmHWM at the end); CPU = utime+stime over
    the attack / its wall time (cores);
  * after: the attacker is gone; the fd count is polled until it is back to
    idle (up to --attack-fd-wait s), then, at least --attack-idle s after
    the attack, RSS and fds "after".
Accept back-off (7) is measured differently: the victim runs under
`prlimit --nofile=64:64`, event listeners take every descriptor and more
connections wait in the unix socket's backlog, so accept fails with EMFILE;
CPU and log lines are counted over the window, then (ours) again with the
TCP listener failing too; -r cannot be served during it by construction, so
the time until `alfred -r` answers after the pressure goes is reported.
"""

from __future__ import annotations

import array
import fcntl
import json
import os
import random
import resource
import select
import signal
import socket
import struct
import subprocess
import termios
import threading
import time

from .common import (ROOT, LinkParams, daemon_pid, log, new_lab, percentile, printable, proc_cpu_s, proc_mem_kb,
                     protocol, push_all, record_failure, request_raw, reset_hwm)

from alfredlab import eui64_linklocal  # noqa: E402 (lab/ is on sys.path through .common)

TOOLS = os.path.join(ROOT, "tests", "integration", "hostile_peer_tools.py")
PY = "/usr/bin/python3"
VARIANTS = ("ours", "debian")

VICTIM_PERIOD = 1
HONEST_PERIOD = 0.25
BIG_RECORDS, BIG_SIZE = 40, 50_000     # the victim's honest type-64 set (2 MB)
UNIX_RECORDS = 16                      # 800 KB, test_hostile_local.py
UNIX_BIG_RECORDS = 100                 # 5 MB: more than the lab's 4 MiB socket send buffer
STALLED_CLIENTS = 520                  # more than our client table (512)
ATTACKER_EXTRA = 20
MANY_ADDRESSES = 600
MARK_EVERY, MARK_LIMIT = 2.5, 5.0
FD_LIMIT = 64

RSS_TARGET_KB = 64 * 1024
PROBE_TARGET_S = 1.0
AFTER_SLACK_KB = 8 * 1024              # "near idle": RSS after <= idle + 8 MB
STORE_MAX_RECORDS = 32768              # README limits table
ACCEPT_CPU_TARGET = 0.1                # cores while accept fails (the test: < 0.3 s in 3 s)


class Attack:
    def __init__(self, name, label, desc, debian, duration, kind="res", tool=None, records=BIG_RECORDS,
                 quick=True):
        self.name, self.label, self.desc = name, label, desc
        self.quick = quick            # part of --quick
        self.debian = debian          # applies to Debian's daemon
        self.duration = duration      # default seconds (the test's)
        self.kind = kind              # res | baseline | unix | accept
        self.tool = tool or {}        # hostile_peer_tools.py res config (without addresses)
        self.records = records


ATTACKS = [
    Attack("baseline", "0", "no attack: the probes and honest records alone", True, 5, kind="baseline",
           quick=False),
    Attack("store_flood", "1", "UDP, 400 complete transactions/s of 100 empty records under random source MACs "
           "and types, from 5 addresses (test_store_flood_is_bounded)", True, 12,
           tool={"kind": "store_flood", "records": 100, "rate": 400, "nsources": 5}),
    Attack("empty_pushes", "2", "one TCP peer: 64 tx ids x 65,535 seqnos of empty 8-byte pushes, 33.5 MB as fast "
           "as it goes, never a txend (the issue's measured case)", False, 12,
           tool={"kind": "empty_pushes", "tx_ids": 64, "seqnos": 65535}),
    Attack("tiny_tcp", "3", "transaction table full (21 addresses x 64 pushes never completed), then one TCP "
           "stream of 4-byte announcements", False, 10, tool={"kind": "tiny_stream", "fill": 64}),
    Attack("tiny_udp", "3u", "the same full table, then 4-byte UDP announcements at 50,000/s from one address",
           True, 10, tool={"kind": "tiny_udp", "fill": 64, "rate": 50000}),
    Attack("udp_requests", "4", "7-byte UDP requests for the 2 MB type, 2,000/s from 21 addresses", True, 10,
           tool={"kind": "udp_requests", "rate": 2000, "req_type": 64}),
    Attack("tcp_requests", "4t", "one TCP write of 5,000 requests for the 2 MB type, answers unread; one honest "
           "connection pipelines two", False, 8, tool={"kind": "tcp_requests", "count": 5000, "req_type": 64}),
    Attack("announces", "5", "4-byte announcements from 600 link-local addresses, 3,000/s", True, 12,
           tool={"kind": "announces", "rate": 3000, "many": True}),
    Attack("unix_stall", "6", f"{STALLED_CLIENTS} unix clients request the 800 KB type and never read",
           True, 13, kind="unix", records=UNIX_RECORDS),
    Attack("unix_stall_5mb", "6b", "the same with a 5 MB type (more than the lab's 4 MiB socket send "
           "buffer)", True, 10, kind="unix", records=UNIX_BIG_RECORDS, quick=False),
    Attack("accept_backoff", "7", f"RLIMIT_NOFILE {FD_LIMIT}: event listeners take every descriptor, more "
           "connections wait in the backlog, accept fails with EMFILE", True, 5, kind="accept"),
]
ATTACK_NAMES = [a.name for a in ATTACKS]
QUICK_NAMES = [a.name for a in ATTACKS if a.quick]


# --------------------------------------------------------------------------- /proc

def fd_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def idle_fds(pid: int, seconds: float = 1.0) -> int:
    vals = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        vals.append(fd_count(pid))
        time.sleep(0.05)
    return min(vals)


def wait_fds(pid: int, want: int, deadline: float) -> tuple[bool, float, int]:
    t0 = time.monotonic()
    while True:
        last = fd_count(pid)
        if last <= want:
            return True, time.monotonic() - t0, last
        if time.monotonic() - t0 > deadline:
            return False, time.monotonic() - t0, last
        time.sleep(0.1)


def out_octets(node) -> int:
    try:
        out = node.exec(["cat", "/proc/net/snmp6"], check=False).stdout.decode()
    except Exception:  # noqa: BLE001 - an extra figure
        return 0
    for line in out.splitlines():
        f = line.split()
        if len(f) == 2 and f[0] == "Ip6OutOctets":
            return int(f[1])
    return 0


def file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def count_lines(path: str, start: int, end: int, needle: bytes | None = None) -> int:
    """Lines (or lines containing `needle`) written to `path` between two offsets."""
    n = 0
    try:
        with open(path, "rb") as f:
            f.seek(start)
            left = end - start
            tail = b""
            while left > 0:
                chunk = f.read(min(left, 1 << 22))
                if not chunk:
                    break
                left -= len(chunk)
                if needle is None:
                    n += chunk.count(b"\n")
                else:
                    buf = tail + chunk
                    lines = buf.split(b"\n")
                    tail = lines.pop()
                    n += sum(1 for ln in lines if needle in ln)
    except OSError:
        pass
    return n


def raise_nofile(n: int = 8192) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n if hard == resource.RLIM_INFINITY else min(n, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


# --------------------------------------------------------------------------- background threads

class Sampler(threading.Thread):
    """VmRSS, VmHWM, fd count and CPU of the victim every `every` s."""

    def __init__(self, pid: int, every: float = 0.1):
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.samples: list[tuple[float, int, int, int, float]] = []
        self.error = None
        self._halt = threading.Event()
        self.t0 = time.monotonic()

    def run(self):
        while not self._halt.is_set():
            m = proc_mem_kb(self.pid)
            cpu = proc_cpu_s(self.pid)
            if not m or cpu is None:
                self.error = f"victim (pid {self.pid}) gone"
                return
            self.samples.append((time.monotonic() - self.t0, fd_count(self.pid), m.get("VmRSS", 0),
                                 m.get("VmHWM", 0), cpu))
            self._halt.wait(self.every)

    def stop(self):
        self._halt.set()
        self.join(5)

    def max_rss(self, t_end: float | None = None) -> int:
        return max((s[2] for s in self.samples if t_end is None or s[0] <= t_end), default=0)

    def max_fds(self, t_end: float | None = None) -> int:
        return max((s[1] for s in self.samples if t_end is None or s[0] <= t_end), default=-1)

    def timeline(self, step: float = 1.0) -> list:
        out, nxt = [], 0.0
        for t, f, r, _h, _c in self.samples:
            if t >= nxt:
                out.append((round(t, 1), f, round(r / 1024, 1)))
                nxt = t + step
        return out


class Prober(threading.Thread):
    """`BIN -r 64 -u SOCK` (the victim's own client) every `every` s; each
    is a failure if it exits non-zero, misses a record or takes > timeout."""

    def __init__(self, node, client: str, sources: list[str], every: float, timeout: float):
        super().__init__(daemon=True)
        self.node, self.client, self.every, self.timeout = node, client, every, timeout
        self.needles = [f'{{ "{s}", '.encode() for s in sources]
        self.results: list[tuple[float, float, str]] = []  # (t, latency, problem or "")
        self._halt = threading.Event()
        self.t0 = time.monotonic()

    def run(self):
        while not self._halt.is_set():
            t = time.monotonic()
            problem = ""
            try:
                cp = subprocess.run([self.client, "-r", "64", "-u", self.node.sock], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=self.timeout)
                lat = time.monotonic() - t
                if cp.returncode != 0:
                    problem = f"exit {cp.returncode}: {cp.stderr.decode(errors='replace').strip()[:120]}"
                else:
                    missing = sum(1 for n in self.needles if n not in cp.stdout)
                    if missing:
                        problem = f"{missing} of {len(self.needles)} records missing"
                if lat > self.timeout:
                    problem = problem or f"took {lat:.2f} s"
            except subprocess.TimeoutExpired:
                lat = self.timeout
                problem = f"no answer within {self.timeout:g} s"
            self.results.append((round(t - self.t0, 2), lat, problem))
            self._halt.wait(max(0.0, self.every - (time.monotonic() - t)))

    def stop(self):
        self._halt.set()
        self.join(self.timeout + 5)

    def summary(self) -> dict:
        lats = [min(lat, self.timeout) if not p else self.timeout for _, lat, p in self.results]
        fails = [(t, p) for t, _, p in self.results if p]
        return {"probes": len(self.results), "probe_failures": len(fails),
                "probe_p50_ms": round(percentile(lats, 50) * 1000, 1) if lats else None,
                "probe_p99_ms": round(percentile(lats, 99) * 1000, 1) if lats else None,
                "probe_max_ms": round(max(lats) * 1000, 1) if lats else None,
                "probe_failure_examples": [f"t={t:.1f}s {p}" for t, p in fails[:4]]}


class Marker(threading.Thread):
    """The honest secondary sets a new type-65 value every MARK_EVERY s (its
    own client); it is polled on the victim (`client`) for up to MARK_LIMIT s."""

    def __init__(self, honest, victim, client: str, tag: str):
        super().__init__(daemon=True)
        self.honest, self.victim, self.client, self.tag = honest, victim, client, tag
        self.results: list[tuple[float, float | None]] = []
        self.errors: list[str] = []
        self._halt = threading.Event()
        self.t0 = time.monotonic()
        self.n = 0

    def one(self) -> float | None:
        self.n += 1
        value = f"{self.tag}-mark-{self.n}-{random.randrange(1 << 30)}".encode()
        needle = b'{ "' + self.honest.mac.encode() + b'", "' + value + b'" },'
        self.honest.set(65, value)
        ts = time.monotonic()
        while time.monotonic() - ts < MARK_LIMIT:
            try:
                cp = subprocess.run([self.client, "-r", "65", "-u", self.victim.sock],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                    stdin=subprocess.DEVNULL, timeout=MARK_LIMIT)
                if needle in cp.stdout:
                    d = time.monotonic() - ts
                    self.results.append((round(ts - self.t0, 2), round(d, 3)))
                    return d
            except (subprocess.TimeoutExpired, OSError):
                pass
            time.sleep(0.1)
        self.results.append((round(ts - self.t0, 2), None))
        return None

    def run(self):
        while not self._halt.is_set():
            t = time.monotonic()
            try:
                self.one()
            except Exception as e:  # noqa: BLE001 - counted as a failed mark
                self.errors.append(str(e).splitlines()[0][:200])
            self._halt.wait(max(0.0, MARK_EVERY - (time.monotonic() - t)))

    def halt(self):
        self._halt.set()

    def stop(self):
        self._halt.set()
        self.join(MARK_LIMIT + 10)

    def summary(self) -> dict:
        ds = [d for _, d in self.results if d is not None]
        return {"marks_set": len(self.results), "marks_arrived": len(ds),
                "mark_max_s": round(max(ds), 2) if ds else None, "mark_errors": self.errors[:3]}


class HangupWatch(threading.Thread):
    """When the daemon closes each socket (POLLRDHUP/POLLHUP), nothing read."""

    def __init__(self):
        super().__init__(daemon=True)
        self.poller = select.poll()
        self.opened: dict[int, float] = {}
        self.closed: dict[int, float] = {}
        self.lock = threading.Lock()
        self._halt = threading.Event()

    def add(self, s: socket.socket):
        with self.lock:
            self.opened[s.fileno()] = time.monotonic()
            self.poller.register(s.fileno(), select.POLLRDHUP | select.POLLHUP)

    def run(self):
        while not self._halt.is_set():
            with self.lock:
                now = time.monotonic()
                for fd, _ev in self.poller.poll(0):
                    self.closed.setdefault(fd, now)
                    self.poller.unregister(fd)
            time.sleep(0.02)

    def stop(self):
        self._halt.set()
        self.join(5)

    def lifetimes(self) -> list[float]:
        return sorted(self.closed[fd] - self.opened[fd] for fd in self.closed)


def unix_connect(path: str, first: bytes = b"", timeout: float = 1.0) -> socket.socket | None:
    """Connect (retrying while the listen backlog is full) and send `first`;
    None if the daemon does not take the connection within `timeout`."""
    end = time.monotonic() + timeout
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(path)
        except (BlockingIOError, InterruptedError):
            s.close()
            if time.monotonic() > end:
                return None
            time.sleep(0.002)
            continue
        except OSError:
            s.close()
            return None
        if first:
            try:
                s.send(first)
            except OSError:
                pass
        return s


def unread_bytes(s: socket.socket) -> int:
    buf = array.array("i", [0])
    try:
        fcntl.ioctl(s.fileno(), termios.FIONREAD, buf)
    except OSError:
        return 0
    return buf[0]


# --------------------------------------------------------------------------- the labs

class Env:
    """One variant's lab: victim n1, honest secondary n2, attacker n3."""

    def __init__(self, cfg, bins, variant: str):
        self.cfg, self.variant = cfg, variant
        self.bin = bins.ours if variant == "ours" else bins.debian
        self.client = bins.ours  # the probes' client, for both daemons (see the module's doc)
        self.flags = ["-t", "-d"] if variant == "ours" else []
        self.lab = new_lab(3, LinkParams(), link="veth")
        self.victim, self.honest, self.attacker = self.lab.node(1), self.lab.node(2), self.lab.node(3)
        self.victim.label, self.honest.label, self.attacker.label = "victim", "honest", "attacker"
        self.honest.start(self.bin, primary=False, period=HONEST_PERIOD,
                          flags=["-t"] if variant == "ours" else [])
        self.sources = [self.attacker.ll6]
        lines = []
        for k in range(ATTACKER_EXTRA):
            ll = eui64_linklocal(f"02:a1:ee:00:{self.lab.run_byte:02x}:{k + 1:02x}")
            lines.append(f"addr add {ll}/64 dev mesh0 nodad")
            self.sources.append(ll)
        self.many = []
        for k in range(MANY_ADDRESSES):
            ll = eui64_linklocal(f"02:a2:{k >> 8:02x}:{k & 0xff:02x}:{self.lab.run_byte:02x}:01")
            lines.append(f"addr add {ll}/64 dev mesh0 nodad")
            self.many.append(ll)
        path = os.path.join(self.lab.dir, "attacker-addresses.ip")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.attacker.exec(["ip", "-6", "-batch", path], timeout=60)
        time.sleep(1.0)

    def big_sources(self, n: int) -> list[str]:
        return [f"02:77:00:00:{i >> 8:02x}:{i & 0xff:02x}" for i in range(1, n + 1)]

    def fresh_victim(self, nrec: int, wrapper=()) -> dict:
        """(Re)start the victim, load its honest set, wait for an honest
        record from the secondary.  Returns setup figures."""
        v = self.victim
        if v.running():
            v.stop()
        v.start(self.bin, primary=True, period=VICTIM_PERIOD, flags=self.flags, wrapper=list(wrapper))
        out = {}
        if nrec:
            rnd = random.Random(nrec)
            srcs = self.big_sources(nrec)
            expected = {bytes(int(x, 16) for x in s.split(":")): printable(rnd, BIG_SIZE) for s in srcs}
            out["repeated_pushes"] = push_all(v.sock, 64, expected)
        else:
            v.set(64, b"back-off check\n")
        out["setup_mark_s"] = Marker(self.honest, v, self.client, "setup").one()
        return out

    def close(self):
        self.lab.close()


# --------------------------------------------------------------------------- attacker process

def start_attacker(ns: str, mode: str, cfg: dict) -> subprocess.Popen:
    return subprocess.Popen(["ip", "netns", "exec", ns, PY, TOOLS, mode, json.dumps(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            start_new_session=True)


def finish_attacker(p: subprocess.Popen, timeout: float) -> dict:
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGTERM)
        try:
            out, err = p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
    for line in out.decode(errors="replace").splitlines():
        if line.startswith("REPORT "):
            return json.loads(line[7:])
    raise RuntimeError(f"attacker gave no report (exit {p.returncode}): {err.decode(errors='replace')[-400:]}")


# --------------------------------------------------------------------------- one run

class Run:
    """The common frame of one attack on one variant: baseline, sampler,
    probes, honest records, the after phase."""

    def __init__(self, cfg, env: Env, att: Attack):
        self.cfg, self.env, self.att = cfg, env, att
        self.duration = cfg.attack_duration if cfg.attack_duration is not None else att.duration
        self.res = {"attack": att.name, "label": att.label, "variant": env.variant, "duration_s": self.duration}

    def setup(self, nrec: int, wrapper=()):
        self.res.update(self.env.fresh_victim(nrec, wrapper))
        self.pid = daemon_pid(self.env.victim)
        self.srcs = self.env.big_sources(nrec)

    def begin(self, probes: bool = True):
        pid = self.pid
        self.res["fds_idle"] = idle_fds(pid, 0.5)
        self.res["rss_idle_kb"] = proc_mem_kb(pid).get("VmRSS")
        self.res["hwm_reset"] = reset_hwm(pid)
        self.out0 = out_octets(self.env.victim)
        self.log0 = file_size(self.env.victim.err_log)
        self.sampler = Sampler(pid)
        self.sampler.start()
        self.prober = self.marker = None
        if probes:
            self.prober = Prober(self.env.victim, self.env.client, self.srcs, self.cfg.attack_probe_every,
                                 self.cfg.attack_probe_timeout)
            self.marker = Marker(self.env.honest, self.env.victim, self.env.client, self.att.name)
            self.prober.start()
            self.marker.start()
        self.t0 = time.monotonic()
        self.cpu0 = proc_cpu_s(pid)

    def attack_over(self):
        """The attack has ended: CPU and peak memory of the window."""
        self.t1 = time.monotonic()
        self.cpu1 = cpu1 = proc_cpu_s(self.pid)
        wall = self.t1 - self.t0
        self.res["attack_s"] = round(wall, 2)
        if cpu1 is not None and self.cpu0 is not None:
            self.res["cpu_s"] = round(cpu1 - self.cpu0, 2)
            self.res["cpu_cores"] = round((cpu1 - self.cpu0) / max(wall, 1e-9), 3)
        t_end = self.t1 - self.sampler.t0
        self.res["rss_max_attack_kb"] = self.sampler.max_rss(t_end)
        self.res["fds_max"] = self.sampler.max_fds(t_end)
        self.res["fds_at_end"] = fd_count(self.pid)
        if self.prober:
            self.prober.stop()
            self.res.update(self.prober.summary())
        if self.marker:
            self.marker.halt()

    def after(self):
        pid = self.pid
        ok, took, last = wait_fds(pid, self.res["fds_idle"], self.cfg.attack_fd_wait)
        self.res["fds_back_s"] = round(took, 1) if ok else None
        left = self.cfg.attack_idle - (time.monotonic() - self.t1)
        if left > 0:
            time.sleep(left)
        if self.marker:
            self.marker.stop()
            self.res.update(self.marker.summary())
        self.res["idle_after_s"] = round(time.monotonic() - self.t1, 1)
        mem = proc_mem_kb(pid)
        self.res["rss_after_kb"] = mem.get("VmRSS")
        self.res["fds_after"] = fd_count(pid)
        cpu2 = proc_cpu_s(pid)
        self.sampler.stop()
        # peak: from the attack's start to this reading (a daemon may still
        # be digesting queued datagrams after the attacker stopped)
        hwm = mem.get("VmHWM") if self.res["hwm_reset"] else None
        self.res["rss_max_sampled_kb"] = self.sampler.max_rss()
        self.res["hwm_kb"] = hwm
        self.res["peak_rss_kb"] = max(self.res["rss_max_sampled_kb"], hwm or 0)
        if cpu2 is not None and self.cpu1 is not None:
            self.res["cpu_s_after"] = round(cpu2 - self.cpu1, 2)
        self.res["victim_out_mb"] = round((out_octets(self.env.victim) - self.out0) / 1e6, 1)
        self.res["log_lines"] = count_lines(self.env.victim.err_log, self.log0, file_size(self.env.victim.err_log))
        self.res["timeline_s_fds_rssmb"] = self.sampler.timeline()
        self.res["alive"] = self.env.victim.running()
        if self.sampler.error and not self.res["alive"]:
            self.res["error"] = "victim died: " + self.env.victim.logs(5)[-300:]

    def stop_threads(self):
        for th in (getattr(self, "prober", None), getattr(self, "marker", None), getattr(self, "sampler", None)):
            if th is not None and th.is_alive():
                th.stop()


def records_held(sock: str) -> int:
    """Records of every type 64..255 the daemon holds (one raw request a type)."""
    n = 0
    for t in range(64, 256):
        try:
            buf = request_raw(sock, t, timeout=30)
        except OSError:
            continue
        pos = 0
        while pos + 4 <= len(buf):
            ptype, _v, length = struct.unpack_from("!BBH", buf, pos)
            end = pos + 4 + length
            if ptype == protocol.PUSH_DATA:
                p = pos + 8
                while p + 10 <= end:
                    ln = struct.unpack_from("!H", buf, p + 8)[0]
                    n += 1
                    p += 10 + ln
            pos = end
    return n


def run_res(cfg, env: Env, att: Attack) -> dict:
    r = Run(cfg, env, att)
    try:
        r.setup(att.records)
        tool = {k: v for k, v in att.tool.items() if k not in ("nsources", "many")}
        tool.update({"victim": env.victim.ll6, "ifname": "mesh0", "duration": r.duration,
                     "sources": env.many if att.tool.get("many") else env.sources[:att.tool.get("nsources", 99)]})
        r.begin()
        p = start_attacker(env.attacker.ns, "res", tool)
        rep = finish_attacker(p, r.duration + 40)
        r.attack_over()
        r.after()
        r.res["attacker"] = rep
        k = att.tool["kind"]
        if k == "store_flood":
            r.res["records_held"] = records_held(env.victim.sock)
        if k in ("tiny_stream", "tiny_udp"):
            n = rep.get("announces_streamed", 0)
            r.res["cpu_us_per_packet"] = round(r.res.get("cpu_s", 0) * 1e6 / max(n, 1), 2)
        env.lab.check_daemons()
    except Exception as e:  # noqa: BLE001 - recorded, the section goes on
        record_failure(r.res, env.lab, e)
    finally:
        r.stop_threads()
    return r.res


def run_baseline(cfg, env: Env, att: Attack) -> dict:
    r = Run(cfg, env, att)
    try:
        r.setup(att.records)
        r.begin()
        time.sleep(r.duration)
        r.attack_over()
        r.after()
        env.lab.check_daemons()
    except Exception as e:  # noqa: BLE001
        record_failure(r.res, env.lab, e)
    finally:
        r.stop_threads()
    return r.res


def run_unix(cfg, env: Env, att: Attack) -> dict:
    """STALLED_CLIENTS unix clients (this process) send a request for type
    64 and never read; held for the attack's duration, then closed."""
    raise_nofile()
    r = Run(cfg, env, att)
    attackers: list[socket.socket] = []
    watch = HangupWatch()
    try:
        r.setup(att.records)
        r.begin()
        watch.start()
        req = protocol.request_packet(64)
        not_taken, in_a_row = 0, 0
        for _ in range(STALLED_CLIENTS):
            if time.monotonic() - r.t0 > r.duration - 1:
                break
            s = unix_connect(env.victim.sock, req, timeout=1.0)
            if s is None:
                not_taken += 1
                in_a_row += 1
                if in_a_row >= 5:  # the daemon takes no more connections (blocked): stop trying
                    break
                continue
            in_a_row = 0
            attackers.append(s)
            watch.add(s)
        r.res["open_phase_s"] = round(time.monotonic() - r.t0, 2)
        time.sleep(1.0)
        queued = sorted(unread_bytes(s) for s in attackers)
        time.sleep(max(0.0, r.duration - (time.monotonic() - r.t0)))
        r.attack_over()
        watch.stop()
        lt = watch.lifetimes()
        r.res["attacker"] = {"clients": len(attackers), "not_taken": not_taken,
                             "closed_by_daemon": len(watch.closed),
                             "closed_after_s_median_max": [round(lt[len(lt) // 2], 2), round(lt[-1], 2)] if lt else None,
                             "kernel_queued_mb": round(sum(queued) / 1e6, 1),
                             "kernel_queued_per_client_kb_max": queued[-1] // 1024 if queued else None}
        for s in attackers:
            s.close()
        attackers = []
        r.after()
        env.lab.check_daemons()
    except Exception as e:  # noqa: BLE001
        record_failure(r.res, env.lab, e)
    finally:
        if watch.is_alive():
            watch.stop()
        for s in attackers:
            s.close()
        r.stop_threads()
    return r.res


TCP_HOLDER = r"""
import socket, sys
addr, n = sys.argv[1], int(sys.argv[2])
scope = socket.if_nametoindex("mesh0")
socks = []
for _ in range(n):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect((addr, 16962, 0, scope))
        socks.append(s)
    except OSError:
        pass
print("connected", len(socks), flush=True)
sys.stdin.read()
"""


def _window(r: Run, seconds: float, needle: bytes) -> dict:
    v = r.env.victim
    o0, c0, t0 = file_size(v.err_log), proc_cpu_s(r.pid), time.monotonic()
    time.sleep(seconds)
    o1, c1, t1 = file_size(v.err_log), proc_cpu_s(r.pid), time.monotonic()
    if c0 is None or c1 is None:
        raise RuntimeError("victim died while accept failed")
    return {"cpu_cores": round((c1 - c0) / (t1 - t0), 3), "log_lines": count_lines(v.err_log, o0, o1),
            "accept_lines": count_lines(v.err_log, o0, o1, needle), "log_bytes": o1 - o0,
            "window_s": round(t1 - t0, 2)}


def run_accept(cfg, env: Env, att: Attack) -> dict:
    """Event listeners take every descriptor of a victim limited to FD_LIMIT;
    more connections wait in the unix backlog; accept fails (EMFILE)."""
    raise_nofile()
    r = Run(cfg, env, att)
    held: list[socket.socket] = []
    holder = None
    v = env.victim
    try:
        r.setup(0, wrapper=["prlimit", f"--nofile={FD_LIMIT}:{FD_LIMIT}"])
        with open(f"/proc/{r.pid}/limits") as f:
            lim = [ln.split()[3:5] for ln in f if ln.startswith("Max open files")]
        r.res["nofile"] = lim[0] if lim else None
        r.begin(probes=False)
        reg = struct.pack("!BBH", protocol.EVENT_REGISTER, 0, 0)
        for _ in range(FD_LIMIT + 40):
            s = unix_connect(v.sock, reg, timeout=0.5)
            if s is None:
                break
            held.append(s)
        needle = b"can't accept"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and count_lines(v.err_log, r.log0, file_size(v.err_log), needle) == 0:
            time.sleep(0.1)
        r.res["fds_full"] = fd_count(r.pid)
        r.res["unix_clients_opened"] = len(held)
        r.res["emfile_seen"] = count_lines(v.err_log, r.log0, file_size(v.err_log), needle) > 0
        # the window proper
        r.t0, r.cpu0 = time.monotonic(), proc_cpu_s(r.pid)
        w = _window(r, r.duration, needle)
        r.res["unix_window"] = w
        r.attack_over()
        r.res["cpu_cores"] = w["cpu_cores"]
        if env.variant == "ours":
            # the TCP listener fails too: connections from the attacker wait in its queue
            holder = subprocess.Popen(["ip", "netns", "exec", env.attacker.ns, PY, "-c", TCP_HOLDER, v.ll6, "10"],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                      start_new_session=True)
            r.res["tcp_holder"] = holder.stdout.readline().decode().strip()
            deadline = time.monotonic() + 5
            o = file_size(v.err_log)
            while time.monotonic() < deadline and count_lines(v.err_log, o, file_size(v.err_log), b"tcp: can't accept") == 0:
                time.sleep(0.1)
            r.res["tcp_window"] = _window(r, min(r.duration, 3.0), needle)
            holder.stdin.close()
            holder.wait(10)
            holder = None
        for s in held:
            s.close()
        held = []
        t_rel = time.monotonic()
        answered = None
        while time.monotonic() - t_rel < 10:
            try:
                cp = subprocess.run([env.client, "-r", "64", "-u", v.sock], stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, timeout=2)
                if cp.returncode == 0 and b"back-off check" in cp.stdout:
                    answered = time.monotonic() - t_rel
                    break
            except subprocess.TimeoutExpired:
                pass
            time.sleep(0.1)
        r.res["answered_after_release_s"] = round(answered, 2) if answered is not None else None
        r.t1 = t_rel
        r.after()
        env.lab.check_daemons()
    except Exception as e:  # noqa: BLE001
        record_failure(r.res, env.lab, e)
    finally:
        if holder is not None:
            try:
                holder.stdin.close()
                holder.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                holder.kill()
        for s in held:
            s.close()
        r.stop_threads()
        # a victim limited to 64 descriptors is not the next attack's victim
        if v.running():
            v.stop()
    return r.res


RUNNERS = {"res": run_res, "baseline": run_baseline, "unix": run_unix, "accept": run_accept}


def _summary_line(x: dict) -> str:
    if "error" in x:
        return f"ERROR {x['error']}"
    s = (f"peak RSS {x.get('peak_rss_kb', 0) / 1024:.1f} MB, after {(x.get('rss_after_kb') or 0) / 1024:.1f} MB, "
         f"CPU {x.get('cpu_cores')} cores")
    if "probes" in x:
        s += (f", -r p50/p99 {x['probe_p50_ms']}/{x['probe_p99_ms']} ms, {x['probe_failures']}/{x['probes']} "
              f"failed, honest {x.get('marks_arrived')}/{x.get('marks_set')}")
    return s


def run(cfg, bins) -> dict:
    wanted = [a for a in ATTACKS if a.name in cfg.attack_list]
    envs: dict[str, Env] = {}
    out = []
    t_sec = time.monotonic()
    try:
        for v in VARIANTS:
            if v == "debian" and not cfg.attack_debian:
                continue
            envs[v] = Env(cfg, bins, v)
        for att in wanted:
            for v in VARIANTS:
                if v not in envs and v == "debian":
                    continue
                if v == "debian" and not att.debian:
                    out.append({"attack": att.name, "label": att.label, "variant": v, "not_applicable":
                                "Debian's alfred has no TCP port"})
                    continue
                # only one victim runs at a time: stop the other variant's
                for w, e in envs.items():
                    if w != v and e.victim.running():
                        e.victim.stop()
                dur = cfg.attack_duration if cfg.attack_duration is not None else att.duration
                log(f"section 5: {att.label} {att.name} on {v} ({dur:g} s)")
                x = RUNNERS[att.kind](cfg, envs[v], att)
                log(f"  {v:6s} {_summary_line(x)}")
                out.append(x)
    finally:
        for e in envs.values():
            try:
                e.close()
            except Exception as ex:  # noqa: BLE001
                log(f"section 5: lab cleanup: {ex}")
    return {"runs": out, "attacks": [{"name": a.name, "label": a.label, "desc": a.desc, "debian": a.debian,
                                      "duration_s": cfg.attack_duration if cfg.attack_duration is not None
                                      else a.duration} for a in wanted],
            "config": {"probe_every_s": cfg.attack_probe_every, "probe_timeout_s": cfg.attack_probe_timeout,
                       "idle_after_s": cfg.attack_idle, "fd_wait_s": cfg.attack_fd_wait,
                       "victim_period": VICTIM_PERIOD, "honest_period": HONEST_PERIOD,
                       "mark_every_s": MARK_EVERY, "mark_limit_s": MARK_LIMIT, "rss_target_mb": 64,
                       "probe_target_s": PROBE_TARGET_S, "after_slack_mb": AFTER_SLACK_KB // 1024,
                       "store_max_records": STORE_MAX_RECORDS, "accept_cpu_target": ACCEPT_CPU_TARGET,
                       "fd_limit": FD_LIMIT, "wall_s": round(time.monotonic() - t_sec, 1)}}
