"""Hardening: hostile local clients (issue 12, findings 6 and 7; issue 13).

The victim is our daemon as a primary on a veth lab; the attackers are unix
clients opened by this test process (the socket is a filesystem path) and,
for the TCP part, connections from a second node.

  test_unix_clients_that_stop_reading
      16 records of 50 KB (800 KB) of type 64, then STALLED_CLIENTS unix
      clients that each send a request for type 64 and never read.  While
      they stay: `alfred -r 64` (every 0.5 s) answers within 1 s with all
      16 records, the victim's RSS stays under 64 MB, and every stalled
      client is closed by the daemon (POLLRDHUP on the attacker's socket)
      within the documented deadline (10 s without write progress), or
      earlier when evicted to make room; none has more than 256 KiB of the
      answer queued in the kernel (the daemon's send buffer), although the
      lab raises net.core.wmem_default to 4 MiB.  Afterwards fds and RSS
      return to about their idle values.
  test_accept_backoff_when_out_of_descriptors
      the victim runs with RLIMIT_NOFILE 64:64; event listeners use up its
      descriptors and more connections wait in the unix socket's backlog,
      then in the TCP listener's: accept fails with EMFILE.  Over 3 s the
      victim uses < 0.3 s of CPU and logs a few lines, for the unix socket
      alone and again with the TCP listener failing too.  When the pressure
      goes, `alfred -r 64` answers again.
  test_many_event_listeners_all_notified
      300 raw event listeners (`09 00 00 00`) all get the notification of
      a change; 100 more fill the cap (384), the rest are refused with one
      log line, and all 384 get the next notification.

Every test prints one line `HOSTILE_LOCAL {json}` with its measurements.
"""

from __future__ import annotations

import array
import fcntl
import json
import resource
import select
import socket
import struct
import subprocess
import termios
import threading
import time

from helpers import our_flags, ours

from alfredlab import protocol
from test_hostile_peers import (Prober, Sampler, cpu_s, fail_if, fd_count, idle_fds, is_sanitized,
                                probe_limit, rss_kb, rss_limit_kb, wait_fds)

PERIOD = 1
BIG_RECORDS = 16          # 16 x 50 KB = 800 KB of type 64
BIG_SIZE = 50_000
STALLED_CLIENTS = 520     # more than the client table (512)
HOLD_S = 15.0             # how long the stalled clients stay, probed all along
STALL_TIMEOUT_S = 10.0    # UnixServerLimits::write_stall_timeout
CLOSE_SLACK_S = 2.5
KERNEL_QUEUE_LIMIT = 256 * 1024  # UnixServerLimits::send_buffer 64 KiB, doubled by the kernel
MAX_LISTENERS = 384       # UnixServerLimits::max_listeners
FD_LIMIT = 64
CPU_LIMIT_S = 0.3
CPU_WINDOW_S = 3.0
LOG_LINES_LIMIT = 20      # per window


def raise_nofile(n: int = 8192) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n if hard == resource.RLIM_INFINITY else min(n, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def unix_connect(path: str, first: bytes = b"", timeout: float = 5.0) -> socket.socket | None:
    """Connect (waiting while the daemon's listen backlog is full) and send
    `first`; None if the daemon does not take the connection in `timeout`."""
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
            s.send(first)
        return s


def unread_bytes(s: socket.socket) -> int:
    buf = array.array("i", [0])
    fcntl.ioctl(s.fileno(), termios.FIONREAD, buf)
    return buf[0]


def log_lines(path: str) -> list[str]:
    with open(path, "rb") as f:
        return f.read().decode(errors="replace").splitlines()


def big_sources() -> list[str]:
    return [f"02:78:00:00:00:{i + 1:02x}" for i in range(BIG_RECORDS)]


def load_big(nd) -> list[str]:
    srcs = big_sources()
    for i, src in enumerate(srcs):
        protocol.push(nd.sock, 64, (b"%02d" % i) * (BIG_SIZE // 2),
                      source=bytes(int(x, 16) for x in src.split(":")))
    deadline = time.monotonic() + 10
    while True:
        cp = nd.client(["-r", "64"], in_ns=False)
        n = sum(1 for s in srcs if f'{{ "{s}", '.encode() in cp.stdout)
        if n == BIG_RECORDS:
            return srcs
        if time.monotonic() > deadline:
            raise AssertionError(f"victim holds only {n} of {BIG_RECORDS} records")
        time.sleep(0.1)


class HangupWatch(threading.Thread):
    """Records when the daemon closes each socket (POLLRDHUP/POLLHUP), without
    reading anything from it."""

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
                events = self.poller.poll(0)
                now = time.monotonic()
                for fd, ev in events:
                    if fd not in self.closed:
                        self.closed[fd] = now
                    self.poller.unregister(fd)
            time.sleep(0.02)

    def stop(self):
        self._halt.set()
        self.join(5)

    def lifetimes(self) -> list[float]:
        return [self.closed[fd] - self.opened[fd] for fd in self.closed]


def victim_lab(make_lab, n: int = 1):
    lab = make_lab(n, link="veth")
    nd = lab.node(1)
    nd.label = "victim"
    return lab, nd


def start_victim(nd, **kw):
    nd.start(ours(), primary=True, period=PERIOD, flags=["-d"] + our_flags(), **kw)


def settled_fds(pid: int) -> int:
    """The idle fd count once start-up is over (a sanitized daemon opens its
    interface sockets a while after the unix socket)."""
    last = idle_fds(pid, 0.5)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        now = idle_fds(pid, 0.5)
        if now == last:
            return now
        last = now
    return last


SANITIZER_MARKERS = ("runtime error:", "ERROR: AddressSanitizer", "ERROR: LeakSanitizer")


def sanitizer_reports(nd) -> list[str]:
    return [ln for ln in log_lines(nd.err_log) if any(mk in ln for mk in SANITIZER_MARKERS)]


# --------------------------------------------------------------------------- finding 6

def test_unix_clients_that_stop_reading(make_lab):
    raise_nofile()
    lab, nd = victim_lab(make_lab)
    start_victim(nd)
    srcs = load_big(nd)
    pid = nd.proc.pid
    idle = settled_fds(pid)
    rss0 = rss_kb(pid)
    log0 = len(log_lines(nd.err_log))
    sampler = Sampler(pid)
    prober = Prober(nd, srcs)
    watch = HangupWatch()
    sampler.start()
    watch.start()
    prober.start()
    t0 = time.monotonic()
    attackers = []
    not_taken = 0
    req = protocol.request_packet(64)
    for _ in range(STALLED_CLIENTS):
        s = unix_connect(nd.sock, req)
        if s is None:
            not_taken += 1
            continue
        attackers.append(s)
        watch.add(s)
    open_s = time.monotonic() - t0
    # What the daemon made the kernel hold for each client that does not
    # read: bounded by the client sockets' send buffer, whatever
    # net.core.wmem_default says (the lab raises it to 4 MiB, which would let
    # each take the whole 800 KB answer: 400 MB for 520 of them).
    time.sleep(1.0)
    queued = sorted(unread_bytes(s) for s in attackers)
    time.sleep(max(0.0, HOLD_S - (time.monotonic() - t0)))
    prober.stop()
    watch.stop()
    still_open = len(attackers) - len(watch.closed)
    for s in attackers:
        s.close()
    ok, took, last = wait_fds(pid, idle, 20)
    time.sleep(1.0)
    rss_after = rss_kb(pid)
    sampler.stop()
    lines = log_lines(nd.err_log)[log0:]
    stalled_lines = sum(1 for ln in lines if "stopped reading its answer" in ln)
    evicted_lines = sum(1 for ln in lines if "client table full" in ln)
    lifetimes = sorted(watch.lifetimes())
    limit_kb = rss_limit_kb(ours(), rss0)
    m = {"test": "unix_clients_that_stop_reading", "stalled_clients": len(attackers),
         "not_taken": not_taken, "open_phase_s": round(open_s, 2),
         "kernel_queued_per_client_kb_median_max": [queued[len(queued) // 2] // 1024, queued[-1] // 1024]
         if queued else None,
         "kernel_queued_total_mb": round(sum(queued) / 2**20, 1),
         "closed_by_daemon": len(watch.closed), "still_open_at_end": still_open,
         "closed_after_s_min_median_max": [round(lifetimes[0], 2), round(lifetimes[len(lifetimes) // 2], 2),
                                           round(lifetimes[-1], 2)] if lifetimes else None,
         "log_stalled": stalled_lines, "log_evicted": evicted_lines,
         "probe_requests": len(prober.results), "probe_max_latency_s": round(prober.max_latency(), 3),
         "probe_latencies_s": [round(r[1], 3) for r in prober.results],
         "rss_idle_mb": round(rss0 / 1024, 1), "rss_max_mb": round(sampler.max_rss() / 1024, 1),
         "rss_after_mb": round(rss_after / 1024, 1), "fds_idle": idle, "fds_max": sampler.max_fds(),
         "fds_after": last, "fds_back_after_s": round(took, 1) if ok else None,
         "cpu_s": round(sampler.cpu_used(), 2), "timeline_s_fds_rssmb": sampler.timeline()}
    print(f"\nHOSTILE_LOCAL {json.dumps(m)}")
    failures = []
    if not nd.running():
        failures.append(f"victim died: {nd.logs(30)}")
    if sampler.error:
        failures.append(sampler.error)
    pf = prober.failures()
    if pf or not prober.results:
        failures.append(f"`alfred -r 64`: {len(pf)} of {len(prober.results)} probes failed or took > "
                        f"{probe_limit(ours()):g}s: " + "; ".join(pf[:8]))
    if sampler.max_rss() >= limit_kb:
        failures.append(f"victim RSS reached {sampler.max_rss() / 1024:.1f} MB (limit {limit_kb / 1024:.0f} MB)")
    if len(attackers) < STALLED_CLIENTS - 8:
        failures.append(f"only {len(attackers)} of {STALLED_CLIENTS} attackers got connected")
    if queued and queued[-1] > KERNEL_QUEUE_LIMIT:
        failures.append(f"a client that does not read has {queued[-1] // 1024} KiB queued in the kernel "
                        f"(limit {KERNEL_QUEUE_LIMIT // 1024} KiB: the daemon's send buffer)")
    if still_open:
        failures.append(f"{still_open} stalled clients still open after {HOLD_S:g}s "
                        f"(deadline {STALL_TIMEOUT_S:g}s without progress)")
    if lifetimes and lifetimes[-1] > STALL_TIMEOUT_S + CLOSE_SLACK_S:
        failures.append(f"a stalled client was closed only {lifetimes[-1]:.1f}s after it connected "
                        f"(deadline {STALL_TIMEOUT_S:g}s)")
    if stalled_lines == 0:
        failures.append("no log line about clients that stopped reading")
    if not ok:
        failures.append(f"fd count {last} after the attackers left, idle was {idle}")
    if not is_sanitized(ours()) and rss_after > rss0 + 16 * 1024:
        failures.append(f"RSS {rss_after / 1024:.1f} MB after the attack, idle was {rss0 / 1024:.1f} MB")
    if sanitizer_reports(nd):
        failures.append(f"sanitizer reports: {sanitizer_reports(nd)[:3]}")
    fail_if(failures, "unix clients that stop reading")


# --------------------------------------------------------------------------- finding 7

TCP_HOLDER = r"""
import socket, sys
addr, n = sys.argv[1], int(sys.argv[2])
scope = socket.if_nametoindex("mesh0")
socks = []
for _ in range(n):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect((addr, 16962, 0, scope))
    socks.append(s)
print("connected", len(socks), flush=True)
sys.stdin.read()
"""


def window(nd, pid: int, seconds: float) -> tuple[float, list[str]]:
    """CPU seconds the daemon used and the log lines it wrote over `seconds`."""
    n0 = len(log_lines(nd.err_log))
    c0 = cpu_s(pid)
    time.sleep(seconds)
    return cpu_s(pid) - c0, log_lines(nd.err_log)[n0:]


def test_accept_backoff_when_out_of_descriptors(make_lab):
    raise_nofile()
    lab, nd = victim_lab(make_lab, 2)
    peer = lab.node(2)
    # (the sanitized build has UBSan's vptr check off, see CMakeLists.txt:
    # under EMFILE it reports false errors)
    start_victim(nd, wrapper=["prlimit", f"--nofile={FD_LIMIT}:{FD_LIMIT}"])
    pid = nd.proc.pid
    with open(f"/proc/{pid}/limits") as f:
        lim = [ln for ln in f if ln.startswith("Max open files")]
    assert lim and lim[0].split()[3:5] == [str(FD_LIMIT), str(FD_LIMIT)], f"fd limit not applied: {lim}"
    nd.set(64, b"back-off check\n")
    idle = settled_fds(pid)
    # listeners use up the descriptors, then connections wait in the backlog
    held = []
    reg = struct.pack("!BBH", protocol.EVENT_REGISTER, 0, 0)
    for _ in range(FD_LIMIT + 40):
        s = unix_connect(nd.sock, reg, timeout=0.5)
        if s is None:
            break
        held.append(s)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any("can't accept unix connection" in ln
                                                  for ln in log_lines(nd.err_log)):
        time.sleep(0.1)
    fds_full = fd_count(pid)
    unix_lines_total = sum(1 for ln in log_lines(nd.err_log) if "can't accept unix connection" in ln)
    cpu_unix, lines_unix = window(nd, pid, CPU_WINDOW_S)
    # now the TCP listener: connections from the peer wait in its queue too
    holder = subprocess.Popen(["ip", "netns", "exec", peer.ns, "/usr/bin/python3", "-c", TCP_HOLDER,
                               nd.ll6, "10"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    tcp_out = holder.stdout.readline().decode().strip()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any("tcp: can't accept" in ln for ln in log_lines(nd.err_log)):
        time.sleep(0.1)
    tcp_logged = any("tcp: can't accept" in ln for ln in log_lines(nd.err_log))
    cpu_tcp, lines_tcp = window(nd, pid, CPU_WINDOW_S)
    alive_under_pressure = nd.running()
    # pressure gone
    holder.stdin.close()
    holder.wait(10)
    for s in held:
        s.close()
    t_release = time.monotonic()
    answered_after = None
    while time.monotonic() - t_release < 10:
        cp = nd.client(["-r", "64"], in_ns=False, timeout=5)
        if cp.returncode == 0 and b"back-off check" in cp.stdout:
            answered_after = time.monotonic() - t_release
            break
        time.sleep(0.1)
    ok, took, last = wait_fds(pid, idle, 15)
    all_lines = log_lines(nd.err_log)
    m = {"test": "accept_backoff", "fd_limit": FD_LIMIT, "fds_idle": idle, "fds_full": fds_full,
         "unix_clients_opened": len(held), "tcp_holder": tcp_out,
         "cpu_s_unix_emfile": round(cpu_unix, 3), "log_lines_unix_window": len(lines_unix),
         "cpu_s_unix_and_tcp_emfile": round(cpu_tcp, 3), "log_lines_tcp_window": len(lines_tcp),
         "accept_log_lines_total": sum(1 for ln in all_lines if "can't accept" in ln),
         "answered_after_release_s": round(answered_after, 2) if answered_after is not None else None,
         "fds_after": last, "fds_back_after_s": round(took, 1) if ok else None,
         "sample_lines": [ln for ln in all_lines if "can't accept" in ln][:4]}
    print(f"\nHOSTILE_LOCAL {json.dumps(m)}")
    failures = []
    if not alive_under_pressure or not nd.running():
        failures.append(f"victim died: {nd.logs(30)}")
    if fds_full < FD_LIMIT - 1:
        failures.append(f"the victim's descriptors never ran out ({fds_full} of {FD_LIMIT})")
    if unix_lines_total == 0:
        failures.append("accept never failed on the unix socket (no log line)")
    if not tcp_logged:
        failures.append(f"accept never failed on the TCP listener (holder: {tcp_out!r})")
    if cpu_unix >= CPU_LIMIT_S:
        failures.append(f"{cpu_unix:.2f}s of CPU in {CPU_WINDOW_S:g}s while unix accept fails (busy loop?)")
    if cpu_tcp >= CPU_LIMIT_S:
        failures.append(f"{cpu_tcp:.2f}s of CPU in {CPU_WINDOW_S:g}s while TCP accept fails too")
    for what, lines in (("unix", lines_unix), ("unix+tcp", lines_tcp)):
        if len(lines) > LOG_LINES_LIMIT:
            failures.append(f"{len(lines)} log lines in {CPU_WINDOW_S:g}s ({what}): {lines[:5]}")
    if answered_after is None:
        failures.append("`alfred -r 64` does not answer after the pressure went")
    if not ok:
        failures.append(f"fd count {last} after the pressure went, idle was {idle}")
    if sanitizer_reports(nd):
        failures.append(f"sanitizer reports: {sanitizer_reports(nd)[:3]}")
    fail_if(failures, "accept back-off")


# --------------------------------------------------------------------------- issue 13

def read_notifications(socks: list[socket.socket], timeout: float) -> dict[int, bytes]:
    """Reads from every socket until each has a whole event notification
    (11 bytes) or the time is up; fd -> bytes read."""
    got = {s.fileno(): b"" for s in socks}
    by_fd = {s.fileno(): s for s in socks}
    poller = select.poll()
    for s in socks:
        poller.register(s.fileno(), select.POLLIN)
    end = time.monotonic() + timeout
    pending = set(got)
    while pending and time.monotonic() < end:
        for fd, _ in poller.poll(100):
            try:
                d = by_fd[fd].recv(64)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                d = b""
            if not d:
                poller.unregister(fd)
                pending.discard(fd)
                continue
            got[fd] += d
            if len(got[fd]) >= 11:
                poller.unregister(fd)
                pending.discard(fd)
    return got


def hung_up(socks: list[socket.socket]) -> list[socket.socket]:
    """The sockets the daemon has closed (nothing is read from them)."""
    poller = select.poll()
    for s in socks:
        poller.register(s.fileno(), select.POLLRDHUP | select.POLLHUP)
    fds = {fd for fd, _ in poller.poll(0)}
    return [s for s in socks if s.fileno() in fds]


def test_many_event_listeners_all_notified(make_lab):
    raise_nofile()
    lab, nd = victim_lab(make_lab)
    start_victim(nd)
    pid = nd.proc.pid
    idle = settled_fds(pid)
    reg = struct.pack("!BBH", protocol.EVENT_REGISTER, 0, 0)
    mac = bytes(int(x, 16) for x in nd.mac.split(":"))
    want = struct.pack("!BBHB", protocol.EVENT_NOTIFY, 0, 7, 64) + mac

    def register(n: int) -> list[socket.socket]:
        out = []
        for _ in range(n):
            s = unix_connect(nd.sock, reg)
            assert s is not None, "the daemon did not take a listener's connection"
            out.append(s)
        return out

    def settle(expect: int):
        deadline = time.monotonic() + 10
        while fd_count(pid) != idle + expect and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)

    first = register(300)
    settle(300)
    log0 = len(log_lines(nd.err_log))
    nd.set(64, b"event one\n")
    got1 = read_notifications(first, 5)
    ok1 = sum(1 for v in got1.values() if v[:11] == want)
    more = register(100)
    settle(MAX_LISTENERS)
    refused = hung_up(more)
    kept = [s for s in first + more if s not in refused]
    nd.set(64, b"event two\n")
    got2 = read_notifications(kept, 5)
    ok2 = sum(1 for v in got2.values() if v[:11] == want)
    lines = log_lines(nd.err_log)[log0:]
    cap_lines = [ln for ln in lines if "too many event listeners" in ln]
    for s in first + more:
        s.close()
    fds_ok, took, last = wait_fds(pid, idle, 10)
    m = {"test": "many_event_listeners", "listeners": 300, "notified_first": ok1,
         "registered_second": len(first) + len(more), "refused": len(refused), "kept": len(kept),
         "notified_second": ok2, "cap_log_lines": len(cap_lines), "cap_log": cap_lines[:2],
         "fds_idle": idle, "fds_after": last}
    print(f"\nHOSTILE_LOCAL {json.dumps(m)}")
    failures = []
    if not nd.running():
        failures.append(f"victim died: {nd.logs(30)}")
    if ok1 != 300:
        bad = [v.hex() for v in got1.values() if v[:11] != want][:3]
        failures.append(f"only {ok1} of 300 listeners got the notification (want {want.hex()}, got e.g. {bad})")
    if len(kept) != MAX_LISTENERS or len(refused) != 400 - MAX_LISTENERS:
        failures.append(f"of 400 listeners {len(kept)} kept and {len(refused)} refused "
                        f"(cap {MAX_LISTENERS})")
    if ok2 != len(kept):
        failures.append(f"only {ok2} of {len(kept)} listeners got the second notification")
    if not 1 <= len(cap_lines) <= 2:
        failures.append(f"{len(cap_lines)} log lines about the listener cap (want one, rate-limited)")
    if not fds_ok:
        failures.append(f"fd count {last} after the listeners left, idle was {idle}")
    if sanitizer_reports(nd):
        failures.append(f"sanitizer reports: {sanitizer_reports(nd)[:3]}")
    fail_if(failures, "many event listeners")
