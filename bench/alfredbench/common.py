"""Shared pieces of the benchmark: binaries, /proc accounting, raw unix-socket
clients, host description and disturbance accounting, small statistics."""

from __future__ import annotations

import hashlib
import os
import platform
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, os.path.join(ROOT, "lab"))

from alfredlab import Lab, LabError, LinkParams, protocol  # noqa: E402,F401
from alfredlab import lab as _labmod  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
DEBIAN = "/usr/sbin/alfred"
STDBUF = ["stdbuf", "-oL"]  # Debian's alfred writes its "announce primary" lines with stdio buffering


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------- binaries

class Binaries:
    """Ours is copied to a private directory first: others rebuild build/ while
    the benchmark runs, and all sections must use the same binary."""

    def __init__(self, ours_src: str, debian: str = DEBIAN, micro_src: str | None = None):
        if not os.path.isfile(ours_src):
            raise SystemExit(f"run-bench: our binary {ours_src} is missing (scripts/build.sh release)")
        if not os.path.isfile(debian):
            raise SystemExit(f"run-bench: Debian's alfred {debian} is missing (apt-get install alfred)")
        self.dir = tempfile.mkdtemp(prefix="alfred-bench-")
        self.ours = os.path.join(self.dir, "alfred")
        shutil.copy2(ours_src, self.ours)
        self.ours_src = ours_src
        self.debian = debian
        self.micro = None
        if micro_src and os.path.isfile(micro_src):
            self.micro = os.path.join(self.dir, "micro_bench")
            shutil.copy2(micro_src, self.micro)
        self.ours_sha256 = sha256(self.ours)
        self.git = git_describe()
        self.debian_version = dpkg_version("alfred")

    def describe(self) -> dict:
        return {"ours": self.ours_src, "ours_sha256": self.ours_sha256[:16], "git": self.git,
                "debian": self.debian, "debian_version": self.debian_version}

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def record_failure(res: dict, lab, e: Exception) -> None:
    """A failed run is recorded (first line of the error, tail of the daemon
    logs) and the benchmark goes on."""
    res["error"] = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
    try:
        res["logs"] = lab.daemon_logs(15)[-3000:]
    except Exception:  # noqa: BLE001 - the logs are a bonus
        pass


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def git_describe() -> str:
    try:
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no", "src"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev + ("+dirty src" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "?"


def dpkg_version(pkg: str) -> str:
    try:
        return subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg], capture_output=True,
                              text=True, timeout=10).stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


# --------------------------------------------------------------- /proc

def proc_cpu_s(pid: int) -> float | None:
    """utime + stime of a process in seconds (None if gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
    except OSError:
        return None
    rest = st[st.rfind(")") + 2:].split()
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def proc_mem_kb(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM / RssAnon / RssFile in kB ({} if gone)."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:", "RssAnon:", "RssFile:")):
                    k, v = line.split(":", 1)
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


def reset_hwm(pid: int) -> bool:
    """Reset the process's peak RSS (VmHWM) to its current RSS (Linux >= 4.0)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def proc_children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def daemon_pid(node) -> int:
    """pid of the daemon process of a lab node (`ip netns exec` execs, stdbuf
    execs; /usr/bin/time forks: then it is time's child)."""
    pid = node.proc.pid
    for _ in range(100):
        try:
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
        except OSError:
            return pid
        if comm == "alfred":
            return pid
        kids = proc_children(pid)
        if kids:
            pid = kids[0]
            continue
        time.sleep(0.02)
    return pid


def daemon_stats(pid: int) -> dict:
    m = proc_mem_kb(pid)
    return {"cpu_s": proc_cpu_s(pid), "rss_kb": m.get("VmRSS"), "hwm_kb": m.get("VmHWM")}


# --------------------------------------------------------------- raw unix-socket clients

def _connect(path: str, timeout: float) -> socket.socket:
    """Blocking connect (a full listen backlog makes a non-blocking connect
    fail with EAGAIN: Debian's daemon has a small backlog)."""
    deadline = time.monotonic() + timeout
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(None)
            s.connect(path)
            s.settimeout(timeout)
            return s
        except (BlockingIOError, InterruptedError, ConnectionRefusedError):
            s.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.001)
        except BaseException:
            s.close()
            raise


def push(path: str, rtype: int, payload: bytes, source: bytes = protocol.ZERO_MAC,
         version: int = 0, timeout: float = 10.0) -> None:
    """One record per connection, like `alfred -s` (source: unicast MAC on a
    primary, zero = the daemon's own)."""
    pkt = protocol.push_packet([protocol.record(rtype, payload, version, source)])
    for attempt in range(5):
        s = _connect(path, timeout)
        try:
            s.sendall(pkt)
            return
        except (BrokenPipeError, ConnectionResetError):
            # Debian's daemon reads a unix message with a single read(); when
            # a large one arrives in pieces (busy host) it drops the client
            if attempt == 4:
                raise
            time.sleep(0.05)
        finally:
            s.close()


def request_raw(path: str, rtype: int, timeout: float = 30.0) -> bytes:
    """Send a request, read until EOF (the daemon closes after the answer);
    returns the whole answer."""
    s = _connect(path, timeout)
    try:
        s.sendall(protocol.request_packet(rtype))
        chunks = []
        while True:
            d = s.recv(1 << 20)
            if not d:
                break
            chunks.append(d)
        return b"".join(chunks)
    finally:
        s.close()


def parse_answer(buf: bytes, rtype: int) -> dict[bytes, bytes]:
    """{source mac (6 bytes): payload} of the push_data packets of an answer."""
    out = {}
    pos = 0
    n = len(buf)
    while pos + 4 <= n:
        ptype, _v, length = struct.unpack_from("!BBH", buf, pos)
        body_end = pos + 4 + length
        if ptype == protocol.PUSH_DATA:
            p = pos + 8
            while p + 10 <= body_end:
                src = buf[p:p + 6]
                t, _ver, ln = struct.unpack_from("!BBH", buf, p + 6)
                if t == rtype:
                    out[src] = buf[p + 10:p + 10 + ln]
                p += 10 + ln
        pos = body_end
    return out


def count_matching(path: str, rtype: int, expected: dict[bytes, bytes], timeout: float = 30.0) -> int:
    try:
        got = parse_answer(request_raw(path, rtype, timeout), rtype)
    except OSError:
        return -1
    return sum(1 for m, p in expected.items() if got.get(m) == p)


def source_mac(i: int, tag: int = 0xbe) -> bytes:
    """Distinct valid unicast (locally administered) source MACs."""
    return bytes([0x02, tag, (i >> 24) & 0xff, (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff])


def printable(rnd: random.Random, n: int) -> bytes:
    return bytes(rnd.randrange(0x21, 0x7f) for _ in range(n)) if n < 4096 else \
        rnd.randbytes(n).translate(_PRINTABLE)


_PRINTABLE = bytes((0x21 + (b % 94)) for b in range(256))


# --------------------------------------------------------------- labs from threads

_lab_seq = 0
_lab_lock = threading.Lock()
KEEP_LOGS: str | None = None  # run-bench --keep-logs DIR: every lab's daemon/VDE logs go to DIR/<run id>


def new_lab(n: int, params: LinkParams | None = None, **kw) -> Lab:
    """A Lab with an explicit unique run id (labs are brought up from several
    threads of this one process; the lab's own pick is per process)."""
    global _lab_seq
    with _lab_lock:
        _lab_seq += 1
        run_id = f"ab{os.getpid()}x{_lab_seq}"
        run_byte = (os.getpid() + _lab_seq) % 250 + 1
    kw.setdefault("keep_logs", KEEP_LOGS)
    lab = Lab(n, params=params or LinkParams(), run_id=run_id, run_byte=run_byte, **kw)
    lab.up()
    return lab


def install_signal_handlers():
    """SIGTERM/SIGHUP/SIGINT unwind the main thread; the lab's atexit hook tears
    down every lab still up (daemons, VDE, namespaces, host sysctls)."""
    _labmod._install_handlers()

    def on_sig(signum, frame):
        raise SystemExit(128 + signum)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_sig)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def run_parallel(fn, items, max_workers: int):
    """fn(item) for all items, at most max_workers at a time, in daemon threads.
    Returns results in order (an exception is returned in place of a result)."""
    res = [None] * len(items)
    sem = threading.Semaphore(max_workers)

    def work(i, it):
        with sem:
            try:
                res[i] = fn(it)
            except BaseException as e:  # noqa: BLE001 - reported by the caller
                res[i] = e

    ths = [threading.Thread(target=work, args=(i, it), daemon=True) for i, it in enumerate(items)]
    for th in ths:
        th.start()
    for th in ths:
        while th.is_alive():
            th.join(0.5)
    return res


# --------------------------------------------------------------- host and disturbance

def machine() -> dict:
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_gb = None
    try:
        with open("/proc/meminfo") as f:
            mem_gb = round(int(f.readline().split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    deb = "?"
    try:
        with open("/etc/debian_version") as f:
            deb = f.read().strip()
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "mem_gib": mem_gb, "kernel": platform.release(),
            "debian": deb, "python": platform.python_version()}


def _cpu_jiffies() -> tuple[int, int]:
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    return sum(parts[:8]), idle


def _foreign_namespaces() -> list[str]:
    mine = f"ab{os.getpid()}x"
    try:
        return sorted(n for n in os.listdir("/run/netns") if not n.startswith(mine))
    except OSError:
        return []


class Disturbance:
    """Host CPU busy vs the CPU this benchmark (its process and reaped
    children: daemons, VDE, clients) used over a section; the difference is
    other load on the machine (e.g. another helper's tests)."""

    def __init__(self):
        self.t0 = time.monotonic()
        self.tot0, self.idle0 = _cpu_jiffies()
        self.own0 = self._own()
        self.load0 = os.getloadavg()[0]
        self.ns0 = _foreign_namespaces()

    @staticmethod
    def _own() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def finish(self) -> dict:
        wall = time.monotonic() - self.t0
        tot, idle = _cpu_jiffies()
        busy_cores = ((tot - self.tot0) - (idle - self.idle0)) / CLK_TCK / max(wall, 1e-9)
        own_cores = (self._own() - self.own0) / max(wall, 1e-9)
        other = max(0.0, busy_cores - own_cores)
        ns1 = _foreign_namespaces()
        fns = sorted(set(self.ns0) | set(ns1))
        return {"wall_s": round(wall, 1), "host_busy_cores": round(busy_cores, 2),
                "bench_cores": round(own_cores, 2), "other_cores": round(other, 2),
                "loadavg_start": round(self.load0, 2), "loadavg_end": round(os.getloadavg()[0], 2),
                "foreign_namespaces": len(fns),
                "disturbed": other > 0.3 * (os.cpu_count() or 1)}


# --------------------------------------------------------------- statistics

def percentile(xs: list[float], p: float) -> float | None:
    return percentile_inf(xs, p)


def percentile_inf(xs: list[float], p: float) -> float | None:
    """Linear-interpolated percentile; samples may contain float('inf') (a
    run that did not converge, an update that did not arrive): no inf*0 = nan."""
    if not xs:
        return None
    s = sorted(xs)
    k = (len(s) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    if k == lo or s[lo] == s[hi]:
        return s[lo]
    if s[hi] == float("inf"):
        return float("inf")
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def median(xs):
    return percentile([x for x in xs if x is not None], 50)


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt(x, nd=2, unit=""):
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{nd}f}{unit}"
    return f"{x}{unit}"


def fmt_ratio(r):
    return "-" if r is None else f"{r:.2f}x"


def table(rows: list[list[str]], header: list[str]) -> str:
    rows = [([str(c) for c in r] + [""] * len(header))[:len(header)] for r in rows]
    w = [max(len(header[i]), *(len(r[i]) for r in rows)) if rows else len(header[i]) for i in range(len(header))]
    out = ["  ".join(h.ljust(w[i]) for i, h in enumerate(header)).rstrip(),
           "  ".join("-" * x for x in w)]
    for r in rows:
        out.append("  ".join(c.ljust(w[i]) for i, c in enumerate(r)).rstrip())
    return "\n".join(out)


def cleanup_stale_labs():
    """Leftovers of earlier killed runs (their owner pid is dead)."""
    _labmod.cleanup_stale(log=lambda s: log("lab cleanup: " + s))


def wait_count(path: str, rtype: int, expected: dict[bytes, bytes], timeout: float = 30.0) -> int:
    """Poll until the daemon returns every expected record (pushes over
    separate connections may still be in flight in the daemon); returns the
    last count."""
    deadline = time.monotonic() + timeout
    while True:
        c = count_matching(path, rtype, expected, timeout=max(timeout, 30.0))
        if c == len(expected) or time.monotonic() > deadline:
            return c
        time.sleep(0.05)


SNMP6_KEYS = ("Ip6ReasmOKs", "Ip6ReasmFails", "Ip6ReasmTimeout", "Udp6InDatagrams", "Udp6RcvbufErrors",
              "Udp6InErrors")


def snmp6(ns: str) -> dict[str, int]:
    """Selected IPv6/UDP counters of a namespace (/proc/net/snmp6 inside it)."""
    try:
        cp = subprocess.run(["ip", "netns", "exec", ns, "cat", "/proc/net/snmp6"], capture_output=True,
                            text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return {}
    out = {}
    for line in cp.stdout.splitlines():
        f = line.split()
        if len(f) == 2 and f[0] in SNMP6_KEYS:
            out[f[0]] = int(f[1])
    return out


class TaskClock:
    """Exact CPU time (perf stat -e task-clock, all threads) of some processes
    between start() and stop(); utime/stime in /proc count 10 ms ticks, too
    coarse for daemons that use a few ms.  stop() returns {pid: seconds}, or
    {} if perf is not usable (callers fall back to /proc)."""

    def __init__(self, pids: list[int]):
        self.pids = [p for p in pids if p]
        self.proc = None
        self.out = None
        self.tids: dict[int, int] = {}

    def start(self) -> "TaskClock":
        perf = shutil.which("perf")
        if not perf or not self.pids:
            return self
        for pid in self.pids:
            try:
                for t in os.listdir(f"/proc/{pid}/task"):
                    self.tids[int(t)] = pid
            except OSError:
                pass
        fd, self.out = tempfile.mkstemp(prefix="alfred-bench-perf-")
        os.close(fd)
        self.proc = subprocess.Popen([perf, "stat", "-e", "task-clock", "-x", ",", "--per-thread", "-o", self.out,
                                      "-p", ",".join(str(p) for p in self.pids)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)  # perf attaches
        return self

    def stop(self) -> dict[int, float]:
        if not self.proc:
            return {}
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        res: dict[int, float] = {}
        try:
            with open(self.out) as f:
                for line in f:
                    f_ = line.strip().split(",")
                    if len(f_) < 4 or f_[3] != "task-clock":
                        continue
                    tid = int(f_[0].rsplit("-", 1)[1])
                    try:
                        ms = float(f_[1])
                    except ValueError:  # <not counted>: never ran
                        ms = 0.0
                    pid = self.tids.get(tid, tid)
                    res[pid] = res.get(pid, 0.0) + ms / 1000.0
        except (OSError, ValueError, IndexError):
            return {}
        finally:
            os.unlink(self.out)
        for p in self.pids:
            res.setdefault(p, 0.0)
        return res


def push_all(path: str, rtype: int, expected: dict[bytes, bytes], rounds: int = 5) -> int:
    """Push every record (one connection each), then make sure the daemon
    holds them all: after a short wait, records still missing are pushed
    again.  (Debian's daemon reads a unix message with one read(); a large
    message that arrives in pieces on a busy host is dropped silently.)
    Returns how many pushes had to be repeated; raises if some never stick."""
    for mac, payload in expected.items():
        push(path, rtype, payload, source=mac)
    repeated = 0
    for _ in range(rounds):
        if wait_count(path, rtype, expected, timeout=2.0) == len(expected):
            return repeated
        got = parse_answer(request_raw(path, rtype), rtype)
        for mac, payload in expected.items():
            if got.get(mac) != payload:
                push(path, rtype, payload, source=mac)
                repeated += 1
    if wait_count(path, rtype, expected, timeout=5.0) != len(expected):
        raise RuntimeError(f"daemon does not hold all {len(expected)} records after {rounds} rounds of pushes")
    return repeated
