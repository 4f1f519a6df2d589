"""The mesh lab: N network namespaces, each with one `mesh0` interface on a
shared virtual L2 segment, and alfred daemons/clients running in them.

Two link back-ends:

* ``vde`` (default): all VDE processes run in a private "hub" namespace
  <run>-hub.  Per node i:
      vde_switch -s RUN/vde/n<i> -t t<i>           (creates tap t<i>)
      ip -n <run>-hub link set t<i> netns <run>-n<i> name mesh0
      wirefilter -v RUN/vde/n<i>:RUN/vde/center [-l RL<loss>] [-D RL<dup>]
                 [-d RL<delay>[+<jitter>]] [-b <rate>]
  plus one central `vde_switch -s RUN/vde/center [-x]`.  Loss, duplication
  and delay are applied on the center->node ("RL") direction only, i.e. on
  the *receiver's* downlink: every frame crosses exactly one impaired hop, so
  loss between any two nodes is exactly --loss and independent per receiver
  (like radio).  --rate is applied in both directions of each node's wire.
  All VDE processes stay in the foreground with a stdin pipe held by the lab
  (they exit on EOF, so they die with the lab even on SIGKILL).

* ``veth``: a linux bridge br0 in the hub namespace, one veth pair per node
  (mesh0 in the node).  Loss only, via an nftables netdev ingress rule on
  mesh0 in the receiving node: ``numgen random mod 10000 < loss*100 drop``.

Traps handled: VDE moves frames over unix datagram sockets; the per-namespace
net.unix.max_dgram_qlen (default 10) is raised to 1024 in every namespace of
the run, and the host-wide net.core.wmem_default is raised while runs are
active (see hostsysctl.py).  Neighbour caches are filled before returning.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import weakref
from typing import Callable, Sequence

from . import hostsysctl
from .records import parse_records, parse_records_verbose
from .util import IP, LabError, eui64_linklocal, ip, pid_alive, run, tail, wait_for

BASE_DIR = "/run/alfred-lab"
DEFAULT_BIN = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "build", "alfred")
DEFAULT_DEBIAN = "/usr/sbin/alfred"
IPV4_GROUP = "239.66.1.2"


def alfred_bin() -> str:
    return os.environ.get("ALFRED_BIN", DEFAULT_BIN)


def debian_bin() -> str:
    return os.environ.get("DEBIAN_ALFRED", DEFAULT_DEBIAN)


class DaemonCrashed(LabError):
    pass


@dataclasses.dataclass
class LinkParams:
    loss: float = 0.0        # percent, per receiver
    dup: float = 0.0         # percent
    delay_ms: float = 0.0    # one-way extra delay
    jitter_ms: float = 0.0   # +/- random variation of the delay
    rate: str | None = None  # wirefilter bandwidth syntax, bytes/s: "125000", "128K", "1M"
    mtu: int = 1280

    def is_clean(self) -> bool:
        return not (self.loss or self.dup or self.delay_ms or self.jitter_ms or self.rate)

    def wirefilter_args(self) -> list[str]:
        a: list[str] = []
        if self.loss:
            a += ["-l", f"RL{self.loss:g}"]
        if self.dup:
            a += ["-D", f"RL{self.dup:g}"]
        if self.delay_ms or self.jitter_ms:
            d = f"RL{self.delay_ms:g}"
            if self.jitter_ms:
                d += f"+{self.jitter_ms:g}U"
            a += ["-d", d]
        if self.rate:
            a += ["-b", str(self.rate)]
        return a

    def describe(self) -> str:
        parts = [f"loss {self.loss:g}%", f"dup {self.dup:g}%", f"delay {self.delay_ms:g}ms"]
        if self.jitter_ms:
            parts.append(f"jitter {self.jitter_ms:g}ms")
        parts.append(f"rate {self.rate or 'unlimited'}")
        parts.append(f"mtu {self.mtu}")
        return ", ".join(parts)


# ---------------------------------------------------------------------------
# preflight

def preflight(link: str = "vde") -> None:
    """Raise LabError with a clear message if the lab cannot run here."""
    problems = []
    if os.geteuid() != 0:
        problems.append("must run as root (network namespaces, taps, sysctls)")
    if not os.path.exists(IP):
        problems.append("iproute2 `ip` not found")
    need = ["ping"]
    if link == "vde":
        need += ["vde_switch", "wirefilter"]
        if not os.path.exists("/dev/net/tun"):
            problems.append("/dev/net/tun missing (needed for VDE taps)")
    elif link == "veth":
        need += ["nft"]
    else:
        problems.append(f"unknown link type {link!r} (vde|veth)")
    for b in need:
        if not shutil.which(b, path=os.environ.get("PATH", "") + ":/usr/sbin:/usr/bin:/sbin:/bin"):
            problems.append(f"`{b}` not found (apt-get install vde2 nftables iputils-ping)")
    if not problems:
        # unique per thread too: a benchmark brings labs up from several threads
        name = f"alpre{os.getpid()}-{threading.get_native_id()}"
        cp = run([IP, "netns", "add", name], check=False)
        if cp.returncode != 0:
            problems.append("`ip netns add` failed: " + cp.stderr.decode(errors="replace").strip())
        else:
            cp2 = run(["true"], ns=name, check=False)
            run([IP, "netns", "del", name], check=False)
            if cp2.returncode != 0:
                problems.append("`ip netns exec` failed: " + cp2.stderr.decode(errors="replace").strip())
    if problems:
        raise LabError("alfred lab cannot run on this machine:\n  - " + "\n  - ".join(problems))


# ---------------------------------------------------------------------------
# global cleanup registry (atexit + SIGTERM/SIGHUP)

_ACTIVE: "weakref.WeakSet[Lab]" = weakref.WeakSet()
_handlers_installed = False


def _close_all():
    for lab in list(_ACTIVE):
        try:
            lab.close()
        except Exception as e:  # pragma: no cover - best effort
            print(f"alfred-lab: cleanup of {lab.run_id} failed: {e}")


def _on_signal(signum, frame):
    # unwind normally so `with` blocks and finally clauses run
    raise SystemExit(128 + signum)


def _install_handlers():
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    atexit.register(_close_all)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) in (signal.SIG_DFL, None):
                signal.signal(sig, _on_signal)


# ---------------------------------------------------------------------------

class Node:
    """One namespace with mesh0, plus (optionally) a running alfred daemon."""

    def __init__(self, lab: "Lab", index: int):
        self.lab = lab
        self.index = index
        self.name = f"n{index}"
        self.ns = f"{lab.run_id}-n{index}"
        self.mac = f"02:a1:00:00:{lab.run_byte:02x}:{index:02x}"
        self.ll6 = eui64_linklocal(self.mac)
        self.ip4 = f"198.18.{lab.run_byte}.{index}"
        self.sock = os.path.join(lab.dir, f"{self.name}.sock")
        self.proc: subprocess.Popen | None = None
        self.argv: list[str] = []
        self.bin: str | None = None
        self.primary = False
        self.env: dict[str, str] | None = None
        self.start_count = 0
        self.exit_history: list[int] = []
        self._out = None
        self._err = None
        self.label = ""  # free text for summaries, e.g. "ours/primary"

    # -- logs --
    @property
    def out_log(self) -> str:
        return os.path.join(self.lab.logdir, f"{self.name}.daemon{self.start_count}.stdout")

    @property
    def err_log(self) -> str:
        return os.path.join(self.lab.logdir, f"{self.name}.daemon{self.start_count}.stderr")

    def logs(self, lines: int = 40) -> str:
        if not self.start_count:
            return f"[{self.name}] no daemon started"
        return (f"[{self.name}] argv: {' '.join(self.argv)}\n"
                f"[{self.name}] stdout ({self.out_log}):\n{tail(self.out_log, lines)}\n"
                f"[{self.name}] stderr ({self.err_log}):\n{tail(self.err_log, lines)}")

    # -- daemon control --
    def start(self, bin: str | None = None, *, primary: bool = False, period: float | str = 1,
              ipv4: str | None = None, flags: Sequence[str] = (), iface: str = "mesh0",
              batif: str = "none", wait: bool = True, timeout: float = 10.0,
              wrapper: Sequence[str] = (), env: dict[str, str] | None = None) -> "Node":
        """wrapper: argv prefix the daemon is run under (e.g. ["stdbuf", "-oL"]);
        it should exec the daemon so that proc.pid stays the daemon's pid.
        env: extra environment variables for the daemon (e.g. ASAN_OPTIONS),
        on top of the lab process' own environment; kept for restart()."""
        if self.running():
            raise LabError(f"{self.name}: daemon already running")
        self.bin = bin or alfred_bin()
        if not os.path.exists(self.bin):
            raise LabError(f"alfred binary not found: {self.bin}")
        self.primary = primary
        self.env = dict(env) if env else None
        argv = list(wrapper) + [self.bin, "-i", iface, "-b", batif]
        if primary:
            argv.append("-m")
        argv += ["-u", self.sock, "-p", str(period)]
        if ipv4:
            argv += ["-4", ipv4]
        argv += list(flags)
        self.argv = argv
        return self._spawn(wait, timeout)

    def _spawn(self, wait: bool, timeout: float) -> "Node":
        self.start_count += 1
        try:
            os.unlink(self.sock)  # a stale socket file of an earlier (killed) daemon
        except FileNotFoundError:
            pass
        self._out = open(self.out_log, "wb")
        self._err = open(self.err_log, "wb")
        env = {**os.environ, **self.env} if self.env else None
        self.proc = subprocess.Popen([IP, "netns", "exec", self.ns] + self.argv,
                                     stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._err,
                                     start_new_session=True, env=env)
        self.started_at = time.monotonic()
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise DaemonCrashed(f"{self.name}: daemon exited with status {self.proc.returncode} "
                                    f"during startup\n{self.logs()}")
            if os.path.exists(self.sock):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    s.settimeout(1)
                    s.connect(self.sock)
                    return
                except OSError:
                    pass
                finally:
                    s.close()
            if time.monotonic() > deadline:
                raise LabError(f"{self.name}: daemon socket {self.sock} not ready after {timeout}s\n{self.logs()}")
            time.sleep(0.02)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check(self) -> None:
        """Raise DaemonCrashed if the daemon died while it should be running."""
        if self.proc is not None and self.proc.poll() is not None:
            rc = self.proc.returncode
            how = f"killed by signal {-rc}" if rc < 0 else f"exited with status {rc}"
            raise DaemonCrashed(f"{self.name}: daemon {how}\n{self.logs()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 3.0) -> int | None:
        if self.proc is None:
            return None
        p = self.proc
        if p.poll() is None:
            try:
                p.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        self.exit_history.append(p.returncode)
        self.proc = None
        for f in (self._out, self._err):
            if f:
                f.close()
        self._out = self._err = None
        return p.returncode

    def restart(self, wait: bool = True, timeout: float = 10.0) -> "Node":
        """Stop (SIGTERM) and start again with the same argv; new log files."""
        if not self.argv:
            raise LabError(f"{self.name}: never started")
        self.stop()
        return self._spawn(wait, timeout)

    # -- clients --
    def client(self, args: Sequence[str], input: bytes | None = None, bin: str | None = None,
               timeout: float = 20.0, sock: bool = True, in_ns: bool = True) -> subprocess.CompletedProcess:
        """Run `BIN args... -u SOCK` inside the node's namespace (like a user
        on that node would; matters for -I, whose interface check is done
        by the client in its own namespace).  in_ns=False runs it from the
        host namespace (the unix socket is a filesystem path, so that works
        for everything else)."""
        b = bin or self.bin or alfred_bin()
        argv = [b] + list(args) + (["-u", self.sock] if sock else [])
        if in_ns:
            argv = [IP, "netns", "exec", self.ns] + argv
        try:
            return subprocess.run(argv, input=input if input is not None else b"",
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise LabError(f"{self.name}: client timed out after {timeout}s: {' '.join(argv)}") from e

    def set(self, rtype: int, data: bytes, version: int | None = None, bin: str | None = None) -> None:
        args = ["-s", str(rtype)]
        if version is not None:
            args += ["-V", str(version)]
        cp = self.client(args, input=data, bin=bin)
        if cp.returncode != 0:
            raise LabError(f"{self.name}: alfred -s {rtype} failed ({cp.returncode}): "
                           f"{cp.stderr.decode(errors='replace')}")

    def read(self, rtype: int, bin: str | None = None, timeout: float = 20.0) -> dict[str, bytes]:
        cp = self.client(["-r", str(rtype)], bin=bin, timeout=timeout)
        if cp.returncode != 0:
            raise LabError(f"{self.name}: alfred -r {rtype} failed ({cp.returncode}): "
                           f"{cp.stderr.decode(errors='replace')}")
        return parse_records(cp.stdout)

    def read_verbose(self, rtype: int, bin: str | None = None) -> dict[str, tuple[bytes, int | None]]:
        cp = self.client(["-r", str(rtype), "-d"], bin=bin)
        if cp.returncode != 0:
            raise LabError(f"{self.name}: alfred -r {rtype} -d failed ({cp.returncode}): "
                           f"{cp.stderr.decode(errors='replace')}")
        return parse_records_verbose(cp.stdout)

    def exec(self, cmd: Sequence[str], check: bool = True, timeout: float = 30.0) -> subprocess.CompletedProcess:
        return run(cmd, ns=self.ns, check=check, timeout=timeout)

    def __repr__(self):
        return f"<Node {self.name} ns={self.ns} mac={self.mac}>"


class Lab:
    """A mesh of `n` nodes.  Use as a context manager; close() is idempotent
    and also runs at interpreter exit and on SIGTERM/SIGHUP."""

    def __init__(self, n: int, *, link: str = "vde", params: LinkParams | None = None,
                 run_id: str | None = None, run_byte: int | None = None, hub_mode: bool = False,
                 base_dir: str = BASE_DIR, keep_logs: str | None = None,
                 log: Callable[[str], None] | None = None):
        if n < 1 or n > 250:
            raise LabError("node count must be 1..250")
        self.n = n
        self.link = link
        self.params = params or LinkParams()
        self.hub_mode = hub_mode
        self.keep_logs = keep_logs
        self.log = log or (lambda s: None)
        pid = os.getpid()
        self.run_id = run_id or self._pick_run_id(pid)
        self.run_byte = run_byte if run_byte is not None else (pid % 250) + 1
        self.dir = os.path.join(base_dir, self.run_id)
        self.logdir = os.path.join(self.dir, "logs")
        self.vdedir = os.path.join(self.dir, "vde")
        self.hub_ns = f"{self.run_id}-hub"
        self.nodes = [Node(self, i) for i in range(1, n + 1)]
        self._infra: list[tuple[str, subprocess.Popen, object]] = []
        self._namespaces: list[str] = []
        self._sysctl_token = f"{pid}/{self.run_id}"
        self._sysctl_held = False
        self._closed = False
        self._up = False
        if self.link == "veth" and (self.params.dup or self.params.delay_ms or self.params.jitter_ms
                                    or self.params.rate):
            raise LabError("--link veth supports loss only (use --link vde for dup/delay/rate)")

    @staticmethod
    def _pick_run_id(pid: int) -> str:
        base = f"al{pid}"
        existing = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
        for suffix in [""] + [chr(c) for c in range(ord("a"), ord("z") + 1)]:
            cand = base + suffix
            if any(e.startswith(cand + "-") for e in existing) or os.path.exists(os.path.join(BASE_DIR, cand)):
                continue
            return cand
        raise LabError("cannot find a free run id")

    # ---- lifecycle ----
    def __enter__(self) -> "Lab":
        self.up()
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def up(self) -> "Lab":
        preflight(self.link)
        _install_handlers()
        _ACTIVE.add(self)
        try:
            os.makedirs(self.logdir, exist_ok=True)
            os.makedirs(self.vdedir, exist_ok=True)
            self._write_owner()
            hostsysctl.acquire(self._sysctl_token)
            self._sysctl_held = True
            t0 = time.monotonic()
            self._make_namespaces()
            if self.link == "vde":
                self._build_vde()
            else:
                self._build_veth()
            self._configure_nodes()
            self._wait_addresses()
            self.fill_neighbours()
            self._up = True
            self.log(f"lab {self.run_id}: {self.n} nodes up via {self.link} ({self.params.describe()}) "
                     f"in {time.monotonic() - t0:.2f}s")
        except BaseException:
            self.close()
            raise
        return self

    def _write_owner(self):
        with open(os.path.join(self.dir, "owner.json"), "w") as f:
            json.dump({"pid": os.getpid(), "run": self.run_id,
                       "namespaces": [self.hub_ns] + [nd.ns for nd in self.nodes]}, f)

    def _make_namespaces(self):
        for ns in [self.hub_ns] + [nd.ns for nd in self.nodes]:
            ip("netns", "add", ns)
            self._namespaces.append(ns)
        hub = ["sysctl", "-qw", "net.unix.max_dgram_qlen=1024"]
        run(hub, ns=self.hub_ns)
        run([IP, "link", "set", "lo", "up"], ns=self.hub_ns)
        for nd in self.nodes:
            run(["sysctl", "-qw", "net.unix.max_dgram_qlen=1024",
                 "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
                 "net.ipv4.icmp_echo_ignore_broadcasts=0"], ns=nd.ns)

    def _spawn_infra(self, name: str, argv: list[str], ns: str) -> subprocess.Popen:
        logf = open(os.path.join(self.logdir, f"{name}.log"), "wb")
        p = subprocess.Popen([IP, "netns", "exec", ns] + argv, stdin=subprocess.PIPE,
                             stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        self._infra.append((name, p, logf))
        return p

    def _build_vde(self):
        center = os.path.join(self.vdedir, "center")
        sw = ["vde_switch", "-s", center, "-n", str(self.n + 8)]
        if self.hub_mode:
            sw.append("-x")
        self._spawn_infra("vde-center", sw, self.hub_ns)
        wait_for(lambda: os.path.exists(os.path.join(center, "ctl")), 5, what="central vde_switch")
        for nd in self.nodes:
            s = os.path.join(self.vdedir, nd.name)
            self._spawn_infra(f"vde-{nd.name}", ["vde_switch", "-s", s, "-n", "4", "-t", f"t{nd.index}"],
                              self.hub_ns)
        for nd in self.nodes:
            s = os.path.join(self.vdedir, nd.name)
            wait_for(lambda: os.path.exists(os.path.join(s, "ctl")), 5, what=f"vde_switch of {nd.name}")
            wait_for(lambda: run([IP, "link", "show", f"t{nd.index}"], ns=self.hub_ns, check=False).returncode == 0,
                     5, what=f"tap t{nd.index}")
            ip("-n", self.hub_ns, "link", "set", f"t{nd.index}", "netns", nd.ns, "name", "mesh0")
            self._spawn_infra(f"wirefilter-{nd.name}",
                              ["wirefilter", "-v", f"{s}:{center}"] + self.params.wirefilter_args(),
                              self.hub_ns)
        time.sleep(0.1)
        self.check_infra()

    def _build_veth(self):
        ip("-n", self.hub_ns, "link", "add", "br0", "type", "bridge", "stp_state", "0",
           "forward_delay", "0", "mcast_snooping", "0")
        ip("-n", self.hub_ns, "link", "set", "br0", "mtu", str(max(self.params.mtu, 1280)), "up")
        for nd in self.nodes:
            p = f"p{nd.index}"
            ip("-n", self.hub_ns, "link", "add", p, "mtu", str(self.params.mtu), "type", "veth",
               "peer", "name", "mesh0", "netns", nd.ns)
            ip("-n", self.hub_ns, "link", "set", p, "master", "br0", "up")
            if self.params.loss:
                thr = int(round(self.params.loss * 100))
                rules = ("table netdev alfredlab {\n"
                         " chain in {\n"
                         "  type filter hook ingress device mesh0 priority 0;\n"
                         f"  numgen random mod 10000 < {thr} drop\n"
                         " }\n}\n")
                run(["nft", "-f", "-"], ns=nd.ns, input=rules.encode())

    def _configure_nodes(self):
        for nd in self.nodes:
            run(["sysctl", "-qw", "net.ipv6.conf.mesh0.accept_dad=0"], ns=nd.ns)
            run([IP, "link", "set", "lo", "up"], ns=nd.ns)
            run([IP, "link", "set", "mesh0", "address", nd.mac, "mtu", str(self.params.mtu)], ns=nd.ns)
            run([IP, "addr", "add", f"{nd.ip4}/24", "brd", "+", "dev", "mesh0"], ns=nd.ns)
            run([IP, "link", "set", "mesh0", "up"], ns=nd.ns)

    def _wait_addresses(self):
        for nd in self.nodes:
            def ok(nd=nd):
                out = run([IP, "-6", "addr", "show", "dev", "mesh0"], ns=nd.ns).stdout.decode()
                return nd.ll6 in out and "tentative" not in out
            wait_for(ok, 10, what=f"link-local {nd.ll6} on {nd.name}")

    def fill_neighbours(self, rounds: int = 2, targeted_rounds: int = 6) -> None:
        """Ping all-nodes multicast (v6) and the broadcast (v4) from every
        node, then unicast-ping whatever is still missing, until every node
        has a neighbour entry for every other node's link-local and IPv4
        address.  Raises if that fails on a link with < 30 % loss."""
        if self.n < 2:
            return
        bcast = f"198.18.{self.run_byte}.255"

        def spawn(ns, cmd):
            return subprocess.Popen([IP, "netns", "exec", ns] + cmd,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        missing = None
        for r in range(rounds):
            procs = []
            for nd in self.nodes:
                procs.append(spawn(nd.ns, ["ping", "-6", "-q", "-c", "2", "-i", "0.2", "-W", "1",
                                           "ff02::1%mesh0"]))
                procs.append(spawn(nd.ns, ["ping", "-4", "-q", "-b", "-c", "2", "-i", "0.2", "-W", "1",
                                           bcast]))
            for p in procs:
                p.wait(15)
            missing = self._missing_neighbours()
            if not missing:
                return
        for r in range(targeted_rounds):
            procs = []
            for name, addrs in missing.items():
                nd = self.node(name)
                for a in addrs:
                    if ":" in a:
                        procs.append(spawn(nd.ns, ["ping", "-6", "-q", "-c", "1", "-W", "1", f"{a}%mesh0"]))
                    else:
                        procs.append(spawn(nd.ns, ["ping", "-4", "-q", "-c", "1", "-W", "1", a]))
            for p in procs:
                p.wait(15)
            missing = self._missing_neighbours()
            if not missing:
                return
        msg = ("neighbour caches incomplete after filling (no L2 connectivity?): "
               + "; ".join(f"{k}: {', '.join(v)}" for k, v in missing.items()))
        if self.params.loss < 30:
            raise LabError(msg)
        self.log("warning: " + msg)

    def _missing_neighbours(self) -> dict[str, list[str]]:
        missing = {}
        for nd in self.nodes:
            out = run([IP, "neigh", "show", "dev", "mesh0"], ns=nd.ns).stdout.decode().lower()
            have = set()
            for line in out.splitlines():
                f = line.split()
                if f and "lladdr" in f and "failed" not in line and "incomplete" not in line:
                    have.add(f[0])
            want = [o.ll6 for o in self.nodes if o is not nd] + [o.ip4 for o in self.nodes if o is not nd]
            miss = [w for w in want if w not in have]
            if miss:
                missing[nd.name] = miss
        return missing

    def check_infra(self) -> None:
        for name, p, _ in self._infra:
            if p.poll() is not None:
                raise LabError(f"lab process {name} exited ({p.returncode}):\n"
                               + tail(os.path.join(self.logdir, f"{name}.log")))

    def check_daemons(self) -> None:
        for nd in self.nodes:
            nd.check()

    def daemon_logs(self, lines: int = 40) -> str:
        return "\n".join(nd.logs(lines) for nd in self.nodes if nd.start_count)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        errors = []
        for nd in self.nodes:
            try:
                nd.stop(timeout=2)
            except Exception as e:
                errors.append(f"stop {nd.name}: {e}")
        for name, p, logf in reversed(self._infra):
            try:
                if p.stdin:
                    p.stdin.close()
            except OSError:
                pass
        for name, p, logf in reversed(self._infra):
            try:
                p.wait(1.5)
            except subprocess.TimeoutExpired:
                p.terminate()
                try:
                    p.wait(2)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(2)
            logf.close()
        self._infra = []
        # anything still living in our namespaces was started by this run
        for ns in self._namespaces:
            kill_namespace_pids(ns)
        for ns in reversed(self._namespaces):
            cp = run([IP, "netns", "del", ns], check=False)
            if cp.returncode != 0 and b"No such file" not in cp.stderr:
                errors.append(f"netns del {ns}: {cp.stderr.decode(errors='replace').strip()}")
        self._namespaces = []
        if self._sysctl_held:
            try:
                hostsysctl.release(self._sysctl_token)
            except Exception as e:
                errors.append(f"sysctl restore: {e}")
            self._sysctl_held = False
        if self.keep_logs and os.path.isdir(self.logdir):
            try:
                dst = os.path.join(self.keep_logs, self.run_id)
                shutil.copytree(self.logdir, dst, dirs_exist_ok=True)
            except OSError as e:
                errors.append(f"keeping logs: {e}")
        shutil.rmtree(self.dir, ignore_errors=True)
        _ACTIVE.discard(self)
        if errors:
            raise LabError("cleanup problems: " + "; ".join(errors))

    # ---- convenience ----
    def node(self, name_or_index) -> Node:
        if isinstance(name_or_index, int):
            return self.nodes[name_or_index - 1]
        for nd in self.nodes:
            if nd.name == name_or_index:
                return nd
        raise KeyError(name_or_index)

    def start_all(self, bins: Sequence[str] | str | None = None, primaries: Sequence[int] = (1,),
                  period: float | str = 1, ipv4: str | None = None,
                  flags: Sequence[str] | dict = ()) -> None:
        """Start a daemon on every node (node indices in `primaries` get -m).
        `bins`: one binary for all, or one per node.  `flags`: list for all,
        or {node_index: [...]}."""
        if bins is None or isinstance(bins, str):
            bins = [bins or alfred_bin()] * self.n
        for nd, b in zip(self.nodes, bins):
            fl = flags.get(nd.index, ()) if isinstance(flags, dict) else flags
            nd.start(b, primary=nd.index in primaries, period=period, ipv4=ipv4, flags=fl, wait=False)
        for nd in self.nodes:
            nd.wait_ready()


def namespace_pids(ns: str) -> list[int]:
    """Pids of processes whose network namespace is the named one (what
    `ip netns pids` does, without spawning it)."""
    try:
        st = os.stat(os.path.join("/run/netns", ns))
    except OSError:
        return []
    key = (st.st_dev, st.st_ino)
    me = os.getpid()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            s2 = os.stat(f"/proc/{entry}/ns/net")
        except OSError:
            continue
        if (s2.st_dev, s2.st_ino) == key:
            pids.append(int(entry))
    return pids


def kill_namespace_pids(ns: str, grace: float = 1.0) -> None:
    pids = namespace_pids(ns)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.05)
    for pid in pids:
        if pid_alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def cleanup_stale(base_dir: str = BASE_DIR, log=print) -> int:
    """Remove leftovers of lab runs whose owning process is dead."""
    n = 0
    if os.path.isdir(base_dir):
        for entry in os.listdir(base_dir):
            owner = os.path.join(base_dir, entry, "owner.json")
            if not os.path.isfile(owner):
                continue
            try:
                with open(owner) as f:
                    info = json.load(f)
            except (OSError, ValueError):
                continue
            if pid_alive(int(info.get("pid", 0))):
                continue
            for ns in info.get("namespaces", []):
                if os.path.exists(os.path.join("/run/netns", ns)):
                    kill_namespace_pids(ns)
                    run([IP, "netns", "del", ns], check=False)
                    log(f"removed stale namespace {ns}")
            shutil.rmtree(os.path.join(base_dir, entry), ignore_errors=True)
            n += 1
    hostsysctl.cleanup_stale()
    return n
