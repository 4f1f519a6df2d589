#!/usr/bin/python3
"""A server-to-server alfred peer that speaks TCP the way the 2016 upstream
proposal does ("[RFC,v2] alfred: implement TCP support for
server-to-server communication", Hans-Werner Hilse, 2016-03-27, on top of
upstream alfred 58e1099, with the thread's one fix: NULL instead of -1 for
the connection passed by the UDP path).  Written from reading that patch;
no code of it is copied.  stdlib only.

Used by tests/integration/test_legacy2016.py.  Two halves:

* run inside a node's network namespace as a process (the peer):

      ip netns exec NS /usr/bin/python3 legacy2016_peer.py serve 'JSON-CONFIG'

  config: {"ifname": "mesh0", "primary": bool, "tcp": bool (the patch's -t),
           "interval": seconds between periodic runs (the patch: fixed
           ALFRED_INTERVAL = 10 s; tests pass 1 s to stay short)}

  It reads commands, one JSON object a line, on stdin and answers on stdout
  with lines "R {json}" (replies, matched by "seq") and "E {json}" (ready).
  Commands: set (local data, what `alfred -s` does), request (what
  `alfred -r` does: answered from the own store on a primary, forwarded to
  the best primary on a secondary), tick (the periodic work now), report,
  stop.

* imported by the tests: class Legacy2016Peer starts the process in a lab
  node's namespace and wraps the commands; probe_once() opens one
  connection from a namespace, sends one packet and says how it ended.

What the patch does on TCP, and so what this peer does (function names are
the patch's; "the C" below means patched alfred):

Listening (netsock_open): one TCP socket per interface, SO_REUSEADDR,
bound to the interface's EUI-64 link-local address, port 16962 (the UDP
port, ALFRED_PORT 0x4242), listen backlog 10.  The UDP sockets are
upstream's: unicast on the link-local address, multicast on ff02::1.

Accepting (netsock_receive_packet): a connection from a source that is not
an EUI-64 fe80:: address, or from one of our own addresses, is shut down
and closed at once.  Otherwise it is read in CLOSE_WHEN_READ mode.  There
are no timeouts on TCP connections at all: one that never finishes a
packet stays open for good.

Framing (recv_alfred_stream): ordinary alfred packets back to back.  Read
the 4-byte TLV header (type u8, version u8, length BE16), then exactly
`length` more bytes; the C never reads past the packet it is assembling,
so whatever follows stays in the kernel buffer.  Neither version nor
length is checked at this level (any 16-bit length is accepted).  On a
complete packet it switches on the TYPE only:
  push_data (0)   process_alfred_push_data, then expect the next packet;
  request (2)     the connection becomes CLOSE_WHEN_WRITTEN, the request is
                  processed with this connection (answer queued on it), and
                  the packet buffer is NOT reset: every later readable
                  event does a recv() of 0 bytes, which returns 0, which the
                  C takes for end of stream -> it stops reading
                  (CLOSED_FOR_READING) and goes on writing;
  status_txend(3) process_alfred_status_txend, then "close connection";
  anything else   (announce 1, status_error 4, modeswitch 5, any type the
                  2016 code does not know) "close connection" at once,
                  without looking at it.
"close connection", EOF (recv returns 0) or a recv error: in
CLOSE_WHEN_READ mode shutdown(SHUT_RDWR) and close() right away (so bytes
the sender wrote after the txend, or after an unknown packet, are unread,
and the kernel answers the close with a RST); in CLOSE_WHEN_WRITTEN mode
the connection only stops being read (CLOSED_FOR_READING).
It never writes anything on a connection it accepted except the answer to
a request.

Requests (process_alfred_request): version 0 and length 3 or ignored (the
connection is then closed with nothing written: netsock_prepare_write_select
closes CLOSE_WHEN_WRITTEN connections with nothing left to send).  No
primary/secondary check at 58e1099: a secondary answers too.  The answer is
push_data(SOURCE_SYNCED, requested type, the request's tx_id echoed),
always ending with a txend (even when nothing matches), built whole in a
buffer, written as the socket takes it; when the last byte is taken by
the kernel (send_alfred_stream), shutdown(SHUT_RDWR) + close().  So the
answerer closes first.

Push data (process_alfred_push_data / process_alfred_status_txend /
finish_alfred_push_data): transactions are keyed by (MAC derived from the
sender's EUI-64 address, tx id); a secondary only accepts packets of a
transaction it created itself (the answer to its own request); duplicate
seqnos are ignored; the txend (version 0, length 4) applies the
transaction if its seqno equals the number of packets received, else drops
it.  A record is stored unless it would overwrite one set locally; it is
first-hand if its source MAC is the sender's, else synced.  Transactions
unfinished for 10 s are dropped at the next periodic run (purge_data).

Sending (push_data, open_alfred_stream, netsock_send, send_alfred_stream):
the whole transaction (push_data packets of up to 65527 bytes, txend) is
built first.  With -t and more than MAX_UDP_ANSWER = 1280 - 40 - 8 = 1232
bytes it goes on a NEW connection (CLOSE_WHEN_WRITTEN): non-blocking
connect to [dest]:16962 (no bind, the kernel picks the link-local source);
if ANY connection to or from that address is already open the transaction
is silently not sent at all (no UDP either); only an immediate connect()
error falls back to UDP; a refusal noticed later just ends the connection
(the data waits for the next period).  Everything is written, then
shutdown(SHUT_RDWR) + close() at once: the sender closes first and never
waits for the receiver.  While writing it still reads what the receiver
sends, with recv_alfred_stream (an unknown type, a txend or EOF there only
stops the reading).  Otherwise UDP datagrams, as upstream.
  sync_data (primary, each period): SOURCE_FIRST_HAND data (local and
    first-hand) to every primary heard announcing, one transaction each;
  push_local_data (secondary, each period): SOURCE_LOCAL data to the best
    primary;
  announce_master (primary, each period): UDP to ff02::1 port 16962;
  a client request on a secondary (unix_sock_req_data): with -t ALWAYS on
    a new connection (CLOSE_WHEN_READ) to the best primary, the 7-byte
    request written, then the connection is read like an accepted one: the
    answer's push_data, its txend, close.  If a connection to that primary
    is already open nothing is sent and the client gets an error 10-20 s
    later.  Without -t: UDP.
  an answer to a UDP request (process_alfred_request without connection):
    with -t and > 1232 bytes on a new connection to the requester, else UDP.
The periodic run happens every ALFRED_INTERVAL (10 s), the first one 10 s
after start; here every `interval`.

Crash: a request the C rejects (version != 0 or length != 3) on TCP leaves
its connection CLOSE_WHEN_WRITTEN with nothing to write;
netsock_prepare_write_select then frees it inside a list walk that is not
the _safe variant, follows the LIST_POISON1 pointer list_del() left, and
the real daemon dies of SIGSEGV (seen with the real build).  This peer then
prints "E {"event": "crash", ...}" and exits with status 139, so a test
sees the peer gone.

Not mirrored: the update command (-c), batman-adv TQ (as with -b none:
every primary has TQ 255, the first one found is the best), interface
re-checks, 600 s data timeout, select()'s exception set; and one memory
bug: a valid request read on the patch's OWN outbound push replaces the
buffer being written but keeps the write offset (the C then sends from the
middle of, and past, the answer's buffer); here the answer is sent whole.

Everything the peer saw is in its report: every TCP connection (direction,
peer, the packets read in order, bytes in/out, why and when it ended,
whether the other side's FIN had arrived before we closed, unread bytes in
the kernel at our close), the UDP datagrams received and sent, the store,
the known primaries, and transactions that were not sent because a
connection to the same address was open.
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import json
import os
import random
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
import time

PORT = 16962                          # ALFRED_PORT 0x4242
MAX_PAYLOAD = 65535 - 8               # MAX_PAYLOAD: (1 << 16) - 1 - sizeof(udphdr)
MAX_UDP_ANSWER = 1280 - 40 - 8        # the patch's MAX_UDP_ANSWER = 1232
PUSH_HDR = 8                          # sizeof(struct alfred_push_data_v0): TLV + tx id + seqno
DATA_HDR = 10                         # sizeof(struct alfred_data): source mac + TLV
REQUEST_TIMEOUT = 10.0                # ALFRED_REQUEST_TIMEOUT
SERVER_TIMEOUT = 60.0                 # ALFRED_SERVER_TIMEOUT
LISTEN_BACKLOG = 10

PUSH_DATA, ANNOUNCE_MASTER, REQUEST, STATUS_TXEND, STATUS_ERROR = 0, 1, 2, 3, 4
TYPE_NAMES = {0: "push_data", 1: "announce_master", 2: "request", 3: "status_txend",
              4: "status_error", 5: "modeswitch", 6: "change_interface"}
SOURCE_LOCAL, SOURCE_FIRST_HAND, SOURCE_SYNCED = 0, 1, 2
SOURCE_NAMES = {0: "local", 1: "first_hand", 2: "synced"}
NO_FILTER = -1

# enum tcp_close
CLOSE_WHEN_READ, CLOSE_WHEN_WRITTEN, CLOSED_FOR_READING = "close_when_read", "close_when_written", \
    "closed_for_reading"

TCP_STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
              6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING"}

HERE = os.path.abspath(__file__)
PY = "/usr/bin/python3"


def norm(addr: str) -> str:
    """Canonical text of an IPv6 address, without a %scope."""
    return str(ipaddress.IPv6Address(addr.split("%")[0]))


def mac_str(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def mac_to_ipv6(mac: bytes) -> str:
    """mac_to_ipv6: fe80::/64 with the EUI-64 interface id."""
    e = bytes([mac[0] ^ 0x02]) + mac[1:3] + b"\xff\xfe" + mac[3:6]
    return str(ipaddress.IPv6Address(b"\xfe\x80" + b"\x00" * 6 + e))


def is_ipv6_eui64(addr: str) -> bool:
    """is_ipv6_eui64: fe80:0:0:0:xxxx:xxff:fexx:xxxx."""
    try:
        a = ipaddress.IPv6Address(addr.split("%")[0]).packed
    except ValueError:
        return False
    return a[0] == 0xFE and a[1] == 0x80 and a[2:8] == b"\x00" * 6 and a[11] == 0xFF and a[12] == 0xFE


def ipv6_to_mac(addr: str) -> bytes | None:
    """ipv6_to_mac: the MAC an EUI-64 link-local address was made from."""
    if not is_ipv6_eui64(addr):
        return None
    a = ipaddress.IPv6Address(addr.split("%")[0]).packed
    return bytes([a[8] ^ 0x02, a[9], a[10], a[13], a[14], a[15]])


def tlv(ptype: int, length: int, version: int = 0) -> bytes:
    return struct.pack("!BBH", ptype, version, length)


def request_packet(rtype: int, tx_id: int) -> bytes:
    return tlv(REQUEST, 3) + struct.pack("!BH", rtype, tx_id)


def describe_packet(pkt: bytes) -> dict:
    """What the report keeps of a packet read from a stream or datagram."""
    ptype, version, length = struct.unpack("!BBH", pkt[:4])
    d = {"type": ptype, "name": TYPE_NAMES.get(ptype, f"unknown_{ptype}"), "version": version,
         "length": length}
    body = pkt[4:]
    if ptype in (PUSH_DATA, STATUS_TXEND, STATUS_ERROR) and len(body) >= 4:
        d["tx_id"], d["seqno"] = struct.unpack("!HH", body[:4])
    if ptype == PUSH_DATA:
        n, pos = 0, 4
        while pos + DATA_HDR <= len(body):
            ln = struct.unpack("!H", body[pos + 8:pos + 10])[0]
            if pos + DATA_HDR + ln > len(body):
                break
            n += 1
            pos += DATA_HDR + ln
        d["records"] = n
    if ptype == REQUEST and len(body) >= 3:
        d["requested_type"] = body[0]
        d["tx_id"] = struct.unpack("!H", body[1:3])[0]
    return d


# =========================================================================== the peer process

class Conn:
    """struct tcp_connection, plus what the report says about it."""

    def __init__(self, peer: "Peer", sock: socket.socket, address: str, direction: str, purpose: str,
                 close_mode: str):
        self.sock = sock
        self.address = address          # the other side's link-local address (no scope)
        self.close = close_mode
        self.packet = bytearray()       # tcp_connection->packet, ->read == len(self.packet)
        self.send_buf = b""             # send_packet
        self.written = 0
        self.connected = direction == "in"
        peer.conn_seq += 1
        self.rec = {"id": peer.conn_seq, "dir": direction, "purpose": purpose, "peer": address,
                    "t_open": time.monotonic(), "t_connected": None, "packets": [],
                    "bytes_in": 0, "bytes_out": 0, "to_send": 0, "end": None, "t_close": None,
                    "closed_by": None, "state_at_close": None, "unread_at_close": None,
                    "stopped_reading": None, "errors": []}

    @property
    def send_length(self) -> int:
        return len(self.send_buf) - self.written


class Peer:
    def __init__(self, cfg: dict):
        self.ifname = cfg.get("ifname", "mesh0")
        self.primary = bool(cfg.get("primary", False))
        self.tcp = bool(cfg.get("tcp", True))
        self.interval = float(cfg.get("interval", 10.0))
        self.scope = socket.if_nametoindex(self.ifname)
        self.hwaddr = self._hwaddr()
        self.address = mac_to_ipv6(self.hwaddr)
        self.conn_seq = 0
        self.conns: list[Conn] = []
        self.closed_conns: list[dict] = []
        self.store: dict[tuple[bytes, int], dict] = {}     # data_hash: (source, type) -> dataset
        self.transactions: dict[tuple[bytes, int], dict] = {}
        self.servers: dict[bytes, dict] = {}              # interface->server_hash
        self.best_server: bytes | None = None
        self.udp_in: list[dict] = []
        self.udp_out: list[dict] = []
        self.skipped: list[dict] = []    # open_alfred_stream found a connection to that address
        self.client_answers: list[dict] = []
        self.counts = {"announce_in": 0, "announce_out": 0, "ticks": 0}
        self.ctl_buf = b""
        self.stopping = False
        self._open_sockets()

    # -- setup (netsock_open)
    def _hwaddr(self) -> bytes:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        try:
            SIOCGIFHWADDR = 0x8927
            r = fcntl.ioctl(s.fileno(), SIOCGIFHWADDR, struct.pack("256s", self.ifname.encode()))
        finally:
            s.close()
        return r[18:24]

    def _open_sockets(self):
        dev = self.ifname.encode() + b"\0"
        self.udp = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        self.udp.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, dev)
        self.udp.bind((self.address, PORT, 0, self.scope))
        self.udp.setblocking(False)
        self.mcast = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        self.mcast.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, dev)
        self.mcast.bind(("ff02::1", PORT, 0, self.scope))
        mreq = socket.inet_pton(socket.AF_INET6, "ff02::1") + struct.pack("@I", self.scope)
        self.mcast.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
        self.mcast.setblocking(False)
        self.listener = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((self.address, PORT, 0, self.scope))
        self.listener.listen(LISTEN_BACKLOG)

    # -- output to the controlling test
    @staticmethod
    def emit(kind: str, obj: dict):
        sys.stdout.write(f"{kind} {json.dumps(obj)}\n")
        sys.stdout.flush()

    def report(self) -> dict:
        now = time.monotonic()
        open_recs = []
        for c in self.conns:
            r = dict(c.rec)
            r["to_send"] = len(c.send_buf)
            r["state_now"] = self._tcp_state(c.sock)
            open_recs.append(r)
        return {
            "now": now, "address": self.address, "mac": mac_str(self.hwaddr), "primary": self.primary,
            "tcp": self.tcp, "connections": self.closed_conns + open_recs,
            "open": [c.rec["id"] for c in self.conns],
            "udp_in": self.udp_in[-500:], "udp_out": self.udp_out[-500:], "skipped": self.skipped,
            "counts": self.counts, "client_answers": self.client_answers,
            "servers": [{"mac": mac_str(m), "address": s["address"]} for m, s in self.servers.items()],
            "best_server": mac_str(self.best_server) if self.best_server else None,
            "store": [{"source": mac_str(k[0]), "type": k[1], "version": d["version"],
                       "data": d["buf"].hex(), "data_source": SOURCE_NAMES[d["source"]],
                       "last_seen": d["last_seen"]} for k, d in self.store.items()],
        }

    # -- closing a connection (the C's shutdown(SHUT_RDWR); close(); list_del; free)
    @staticmethod
    def _tcp_state(sock: socket.socket) -> str | None:
        try:
            info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
        except OSError:
            return None
        return TCP_STATES.get(info[0], str(info[0]))

    def close_conn(self, c: Conn, why: str):
        if c not in self.conns:
            return
        rec = c.rec
        state = self._tcp_state(c.sock)
        try:
            unread = struct.unpack("i", fcntl.ioctl(c.sock.fileno(), termios.FIONREAD, b"\0" * 4))[0]
        except OSError:
            unread = None
        rec["state_at_close"] = state
        rec["unread_at_close"] = unread
        if rec["closed_by"] is None:
            # CLOSE_WAIT: the other side's FIN arrived before our close;
            # CLOSE: it reset the connection (or never accepted it)
            rec["closed_by"] = {"CLOSE_WAIT": "peer", "CLOSE": "peer (reset)"}.get(state, "us")
        rec["end"] = rec["end"] or why
        rec["t_close"] = time.monotonic()
        try:
            c.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        c.sock.close()
        self.conns.remove(c)
        self.closed_conns.append(rec)

    # -- main loop (alfred_server)
    def run(self):
        self.emit("E", {"event": "ready", "address": self.address, "mac": mac_str(self.hwaddr),
                        "now": time.monotonic()})
        last_check = time.monotonic()
        stdin = sys.stdin.buffer.fileno()
        while not self.stopping:
            timeout = max(0.0, last_check + self.interval - time.monotonic())
            # netsock_prepare_write_select: connections with something to
            # write are watched; CLOSE_WHEN_WRITTEN ones with nothing left go
            wr = []
            for c in list(self.conns):
                if not c.connected or c.send_length:
                    wr.append(c.sock)
                elif c.close == CLOSE_WHEN_WRITTEN:
                    self.close_conn(c, c.rec["end"] or "nothing to write")
                    self.crash(c)
            rd = [stdin, self.udp, self.mcast, self.listener] + \
                 [c.sock for c in self.conns if c.close != CLOSED_FOR_READING]
            try:
                r, w, _ = select.select(rd, wr, [], timeout)
            except InterruptedError:
                continue
            if r or w:
                if stdin in r:
                    self.control(stdin)
                    continue
                if self.receive(r) > 0:
                    continue
                if self.send(w) > 0:
                    continue
                continue
            last_check = time.monotonic()
            self.tick()

    def crash(self, c: Conn):
        """netsock_prepare_write_select frees the connection inside
        list_for_each_entry (not the _safe variant); list_del() has set its
        next pointer to LIST_POISON1 (0x00100100), which the loop then
        follows: the real daemon dies of SIGSEGV here, every time.  Only a
        request the C rejected (version != 0 or length != 3) leads here: it
        is left CLOSE_WHEN_WRITTEN with nothing to write."""
        why = (f"conn {c.rec['id']} from {c.address} (a request with version/length the patch rejects) "
               "closed in netsock_prepare_write_select: the real daemon segfaults here")
        self.emit("E", {"event": "crash", "reason": why, "report": self.report()})
        sys.stderr.write("legacy2016 peer: " + why + "\n")
        sys.stderr.flush()
        os._exit(128 + signal.SIGSEGV)

    def tick(self):
        self.counts["ticks"] += 1
        if self.primary:
            self.announce_master()
            self.sync_data()
        else:
            self.push_local_data()
        self.purge_data()

    # -- control channel (stands in for the unix socket)
    def control(self, fd: int):
        data = os.read(fd, 65536)
        if not data:
            self.stopping = True
            return
        self.ctl_buf += data
        while b"\n" in self.ctl_buf:
            line, self.ctl_buf = self.ctl_buf.split(b"\n", 1)
            if line.strip():
                self.command(json.loads(line))

    def command(self, cmd: dict):
        op, seq = cmd.get("op"), cmd.get("seq")
        if op == "set":
            # unix_sock_add_data: the record's source is our MAC, SOURCE_LOCAL
            key = (self.hwaddr, int(cmd["type"]))
            self.store[key] = {"version": int(cmd.get("version", 0)), "buf": bytes.fromhex(cmd["data"]),
                               "source": SOURCE_LOCAL, "last_seen": time.monotonic()}
            self.emit("R", {"seq": seq, "ok": True})
        elif op == "request":
            self.client_request(int(cmd["type"]), seq)
        elif op == "tick":
            self.tick()
            self.emit("R", {"seq": seq, "ok": True})
        elif op == "report":
            self.emit("R", {"seq": seq, "ok": True, "report": self.report()})
        elif op == "stop":
            self.emit("R", {"seq": seq, "ok": True, "report": self.report()})
            self.stopping = True
        else:
            self.emit("R", {"seq": seq, "ok": False, "error": f"unknown op {op!r}"})

    # -- receiving (netsock_receive_packet)
    def receive(self, ready) -> int:
        recvs = 0
        for s in (self.udp, self.mcast):
            if s in ready:
                self.recv_alfred_packet(s)
                recvs += 1
        for c in list(self.conns):
            if c.sock in ready and c in self.conns and c.close != CLOSED_FOR_READING:
                if self.recv_alfred_stream(c) < 0:
                    if c.close == CLOSE_WHEN_READ:
                        self.close_conn(c, c.rec["end"] or "closed")
                    else:
                        c.close = CLOSED_FOR_READING
                        c.rec["stopped_reading"] = c.rec["end"]
                        c.rec["end"] = None
                recvs += 1
        if self.listener in ready:
            self.accept()
            recvs += 1
        return recvs

    def accept(self):
        try:
            sock, addr = self.listener.accept()
        except OSError:
            return
        address = norm(addr[0])
        if not is_ipv6_eui64(address) or address == self.address:
            # "not handling TCP connection from non-link-local address" /
            # "... from ourselves"
            self.closed_conns.append({"id": None, "dir": "in", "peer": address, "end": "dropped",
                                      "t_open": time.monotonic(), "packets": []})
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
            return
        c = Conn(self, sock, address, "in", "accepted", CLOSE_WHEN_READ)
        c.rec["t_connected"] = c.rec["t_open"]
        self.conns.append(c)

    def recv_alfred_stream(self, c: Conn) -> int:
        """recv_alfred_stream: 0 = keep going, -1 = "close connection"."""
        rec = c.rec
        if len(c.packet) < 4:
            to_read = 4 - len(c.packet)
        else:
            to_read = 4 + struct.unpack("!H", c.packet[2:4])[0] - len(c.packet)
        try:
            data = c.sock.recv(to_read, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError as e:
            rec["errors"].append(errno.errorcode.get(e.errno, str(e.errno)))
            if e.errno == errno.ECONNRESET:
                rec["closed_by"] = rec["closed_by"] or "peer (reset)"
            rec["end"] = rec["end"] or f"recv error {errno.errorcode.get(e.errno, e.errno)}"
            return -1
        if not data:
            if to_read == 0:
                # the request is still in the buffer: recv(0) returns 0, "end of stream"
                rec["end"] = rec["end"] or "read after the request"
            else:
                rec["end"] = rec["end"] or ("eof" if not c.packet else "eof inside a packet")
                rec["closed_by"] = rec["closed_by"] or "peer"
            return -1
        rec["bytes_in"] += len(data)
        c.packet += data
        if len(c.packet) < 4 or len(c.packet) < 4 + struct.unpack("!H", c.packet[2:4])[0]:
            return 0
        pkt = bytes(c.packet)
        d = describe_packet(pkt)
        d["t"] = time.monotonic()
        rec["packets"].append(d)
        ptype = pkt[0]
        if ptype == REQUEST:
            c.close = CLOSE_WHEN_WRITTEN
            rec["purpose"] = "request"
            self.process_alfred_request(c.address, pkt, c)
            return 0                    # the buffer is left as it is (see the docstring)
        if ptype == PUSH_DATA:
            self.process_alfred_push_data(c.address, pkt)
            c.packet = bytearray()
            return 0
        if ptype == STATUS_TXEND:
            self.process_alfred_status_txend(c.address, pkt)
            rec["end"] = rec["end"] or "txend"
            return -1
        rec["end"] = rec["end"] or f"unknown type {ptype}"
        return -1

    def recv_alfred_packet(self, s: socket.socket):
        try:
            buf, addr = s.recvfrom(MAX_PAYLOAD)
        except (BlockingIOError, InterruptedError):
            return
        source = norm(addr[0])
        if not is_ipv6_eui64(source) or source == self.address:
            return
        if len(buf) < 4 or len(buf) < 4 + struct.unpack("!H", buf[2:4])[0]:
            return
        d = describe_packet(buf)
        if buf[1] != 0:
            return
        ptype = buf[0]
        if ptype == ANNOUNCE_MASTER:
            self.counts["announce_in"] += 1
        else:
            d.update({"from": source, "t": time.monotonic(), "bytes": len(buf)})
            self.udp_in.append(d)
        if ptype == PUSH_DATA:
            self.process_alfred_push_data(source, buf)
        elif ptype == ANNOUNCE_MASTER:
            self.process_alfred_announce_master(source, buf)
        elif ptype == REQUEST:
            self.process_alfred_request(source, buf, None)
        elif ptype == STATUS_TXEND:
            self.process_alfred_status_txend(source, buf)

    # -- packet processing (recv.c)
    def process_alfred_push_data(self, source: str, pkt: bytes):
        mac = ipv6_to_mac(source)
        if mac is None:
            return
        length = struct.unpack("!H", pkt[2:4])[0]
        if length < PUSH_HDR - 4:
            return
        tx_id, seqno = struct.unpack("!HH", pkt[4:8])
        head = self.transactions.get((mac, tx_id))
        if head is None:
            if not self.primary:        # "slave must create the transactions"
                return
            head = self.transactions[(mac, tx_id)] = {"packets": {}, "client": None, "type": None}
        head["last_rx"] = time.monotonic()
        if seqno in head["packets"]:    # duplicate
            return
        head["packets"][seqno] = pkt[:4 + length]

    def process_alfred_status_txend(self, source: str, pkt: bytes):
        length = struct.unpack("!H", pkt[2:4])[0]
        if pkt[1] != 0 or length != 4:
            return
        mac = ipv6_to_mac(source)
        if mac is None:
            return
        tx_id, count = struct.unpack("!HH", pkt[4:8])
        head = self.transactions.pop((mac, tx_id), None)
        if head is None:
            return
        finished = len(head["packets"]) == count
        if finished:
            for p in head["packets"].values():
                self.finish_alfred_push_data(mac, p)
        if head["client"] is not None:
            self.req_data_finish(head, finished)

    def finish_alfred_push_data(self, mac: bytes, pkt: bytes):
        length = struct.unpack("!H", pkt[2:4])[0] - (PUSH_HDR - 4)
        pos = PUSH_HDR
        while length >= DATA_HDR:
            source = pkt[pos:pos + 6]
            rtype, version, dlen = struct.unpack("!BBH", pkt[pos + 6:pos + 10])
            if DATA_HDR + dlen > length:
                break
            key = (source, rtype)
            ds = self.store.get(key)
            if ds is None:
                ds = self.store[key] = {"version": version, "buf": b"", "source": SOURCE_SYNCED}
            if ds["source"] != SOURCE_LOCAL:        # "don't overwrite our own data"
                ds["last_seen"] = time.monotonic()
                ds["buf"] = pkt[pos + DATA_HDR:pos + DATA_HDR + dlen]
                ds["version"] = version
                ds["source"] = SOURCE_FIRST_HAND if source == mac else SOURCE_SYNCED
            pos += DATA_HDR + dlen
            length -= DATA_HDR + dlen

    def process_alfred_announce_master(self, source: str, pkt: bytes):
        mac = ipv6_to_mac(source)
        if mac is None or pkt[1] != 0 or struct.unpack("!H", pkt[2:4])[0] != 0:
            return
        s = self.servers.setdefault(mac, {"address": source})
        s["last_seen"] = time.monotonic()
        if not self.primary:
            self.set_best_server()

    def set_best_server(self):
        # -b none: every server has TQ 255, the first one found wins
        self.best_server = next(iter(self.servers), None)

    def process_alfred_request(self, source: str, pkt: bytes, conn: Conn | None):
        length = struct.unpack("!H", pkt[2:4])[0]
        if pkt[1] != 0 or length != 3:
            return
        rtype = pkt[4]
        tx_id = struct.unpack("!H", pkt[5:7])[0]
        self.push_data(source, SOURCE_SYNCED, rtype, tx_id, conn, "answer")

    # -- sending (send.c)
    def push_data_handler(self, max_source_level: int, type_filter: int, tx_id: int) -> list[bytes]:
        """The packets of one transaction: push_data of up to MAX_PAYLOAD
        bytes each, then a txend if anything was sent or a type was asked for."""
        packets, chunk, seqno = [], b"", 0
        limit = MAX_PAYLOAD - PUSH_HDR

        def flush():
            nonlocal chunk, seqno
            packets.append(tlv(PUSH_DATA, PUSH_HDR - 4 + len(chunk)) + struct.pack("!HH", tx_id, seqno)
                           + chunk)
            seqno += 1
            chunk = b""

        for (source, rtype), ds in self.store.items():
            if ds["source"] > max_source_level:
                continue
            if type_filter >= 0 and rtype != type_filter:
                continue
            size = DATA_HDR + len(ds["buf"])
            if len(chunk) + size > limit:
                if not chunk:
                    continue
                flush()
            if len(chunk) + size > limit:
                continue
            chunk += source + struct.pack("!BBH", rtype, ds["version"], len(ds["buf"])) + ds["buf"]
        if chunk:
            flush()
        if seqno > 0 or type_filter != NO_FILTER:
            packets.append(tlv(STATUS_TXEND, 4) + struct.pack("!HH", tx_id, seqno))
        return packets

    def push_data(self, dest: str, max_source_level: int, type_filter: int, tx_id: int,
                  conn: Conn | None, purpose: str = "push"):
        packets = self.push_data_handler(max_source_level, type_filter, tx_id)
        buf = b"".join(packets)
        if conn is not None:
            # request via TCP: the answer goes on that connection
            conn.send_buf, conn.written = buf, 0
            conn.rec["to_send"] = len(buf)
            return
        if self.tcp and len(buf) > MAX_UDP_ANSWER:
            if self.open_alfred_stream(dest, buf, CLOSE_WHEN_WRITTEN, purpose) >= 0:
                return
        for p in packets:
            self.send_alfred_packet(dest, p)

    def send_alfred_packet(self, dest: str, pkt: bytes):
        try:
            self.udp.sendto(pkt, (dest, PORT, 0, self.scope))
        except OSError:
            pass
        if pkt[0] != ANNOUNCE_MASTER:
            d = describe_packet(pkt)
            d.update({"to": dest, "t": time.monotonic(), "bytes": len(pkt)})
            self.udp_out.append(d)

    def open_alfred_stream(self, dest: str, buf: bytes, close_mode: str, purpose: str) -> int:
        for c in self.conns:
            if c.address == dest:
                # "when there is already a connection in progress, do not open
                # a new one - also, don't report an error either"
                self.skipped.append({"t": time.monotonic(), "to": dest, "purpose": purpose,
                                     "bytes": len(buf), "open_conn": c.rec["id"]})
                return 0
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        sock.setblocking(False)
        err = sock.connect_ex((dest, PORT, 0, self.scope))
        if err not in (0, errno.EINPROGRESS):
            sock.close()
            return -1
        c = Conn(self, sock, dest, "out", purpose, close_mode)
        c.send_buf = buf
        c.rec["to_send"] = len(buf)
        self.conns.append(c)
        return 0

    def send(self, ready) -> int:
        """netsock_send / send_alfred_stream."""
        sends = 0
        for c in list(self.conns):
            if c.sock not in ready or c not in self.conns:
                continue
            if not c.connected:
                c.connected = True
                if self._tcp_state(c.sock) == "ESTABLISHED":
                    c.rec["t_connected"] = time.monotonic()
            if c.send_length:
                done = False
                try:
                    n = c.sock.send(c.send_buf[c.written:], socket.MSG_NOSIGNAL)
                except (BlockingIOError, InterruptedError):
                    n = None
                except OSError as e:
                    c.rec["errors"].append(errno.errorcode.get(e.errno, str(e.errno)))
                    c.rec["end"] = c.rec["end"] or f"send error {errno.errorcode.get(e.errno, e.errno)}"
                    c.written = len(c.send_buf)      # "do not try to send again"
                    done = True
                    n = None
                if n:
                    c.written += n
                    c.rec["bytes_out"] += n
                    if c.written == len(c.send_buf):
                        done = True
                if done and c.close in (CLOSE_WHEN_WRITTEN, CLOSED_FOR_READING):
                    self.close_conn(c, c.rec["end"] or "all written")
            sends += 1
        return sends

    def sync_data(self):
        for mac, s in list(self.servers.items()):
            self.push_data(s["address"], SOURCE_FIRST_HAND, NO_FILTER, random.randrange(0x10000), None,
                           "sync")

    def push_local_data(self):
        if self.best_server is None or self.best_server not in self.servers:
            return
        self.push_data(self.servers[self.best_server]["address"], SOURCE_LOCAL, NO_FILTER,
                       random.randrange(0x10000), None, "push_local")

    def announce_master(self):
        self.counts["announce_out"] += 1
        self.send_alfred_packet("ff02::1", tlv(ANNOUNCE_MASTER, 0))

    def purge_data(self):
        now = time.monotonic()
        for mac in [m for m, s in self.servers.items() if now - s["last_seen"] >= SERVER_TIMEOUT]:
            del self.servers[mac]
            if self.best_server == mac:
                self.best_server = None
        if self.best_server is None and not self.primary:
            self.set_best_server()
        for key in [k for k, h in self.transactions.items()
                    if now - h.get("last_rx", now) >= REQUEST_TIMEOUT]:
            head = self.transactions.pop(key)
            if head["client"] is not None:
                self.req_data_finish(head, False)

    # -- the client side (unix_sock_req_data / unix_sock_req_data_finish)
    def local_records(self, rtype: int) -> dict:
        return {mac_str(src): ds["buf"].hex() for (src, t), ds in self.store.items() if t == rtype}

    def client_request(self, rtype: int, seq):
        if self.best_server is None or self.primary or self.best_server not in self.servers:
            ans = {"seq": seq, "ok": True, "records": self.local_records(rtype), "forwarded": False}
            self.client_answers.append({k: v for k, v in ans.items() if k != "records"})
            self.emit("R", ans)
            return
        tx_id = random.randrange(0x10000)
        server = self.servers[self.best_server]
        head = {"packets": {}, "client": seq, "type": rtype, "last_rx": time.monotonic(),
                "t_request": time.monotonic(), "server": server["address"]}
        self.transactions[(self.best_server, tx_id)] = head
        req = request_packet(rtype, tx_id)
        if self.tcp:
            before = self.conn_seq
            if self.open_alfred_stream(server["address"], req, CLOSE_WHEN_READ, "request") == 0:
                head["conn"] = self.conn_seq if self.conn_seq != before else None
                return
        head["conn"] = None
        self.send_alfred_packet(server["address"], req)

    def req_data_finish(self, head: dict, finished: bool):
        ans = {"seq": head["client"], "forwarded": True, "to": head.get("server"), "conn": head.get("conn"),
               "took": time.monotonic() - head["t_request"]}
        if finished:
            ans.update(ok=True, records=self.local_records(head["type"]))
        else:
            ans.update(ok=False, error="status_error (transaction incomplete or timed out)")
        self.client_answers.append({k: v for k, v in ans.items() if k != "records"})
        self.emit("R", ans)


def serve(cfg: dict) -> int:
    peer = Peer(cfg)

    def on_term(signum, frame):
        peer.stopping = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    peer.run()
    for c in list(peer.conns):
        peer.close_conn(c, "peer process stopped")
    return 0


def probe(cfg: dict) -> int:
    """Open one TCP connection to cfg["to"] (from this namespace), send
    cfg["packet"] (hex), then nothing; wait up to cfg["wait"] seconds for the
    other side to close and print "REPORT {json}": result "eof" (a FIN),
    "eof, then reset" (a FIN, then a RST: it closed with bytes of ours
    unread), "reset" or "open" (still open after the wait), the bytes it
    sent back before, and how long that took."""
    scope = socket.if_nametoindex(cfg.get("ifname", "mesh0"))
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.settimeout(5)
    out = {"to": cfg["to"]}
    try:
        s.connect((cfg["to"], PORT, 0, scope))
    except OSError as e:
        out["result"] = "connect failed: " + str(e)
        print("REPORT " + json.dumps(out), flush=True)
        return 0
    t0 = time.monotonic()
    s.sendall(bytes.fromhex(cfg["packet"]))
    got = b""
    s.settimeout(0.05)
    result = "open"
    while time.monotonic() - t0 < float(cfg.get("wait", 2.0)):
        try:
            d = s.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            result = "reset"
            break
        if not d:
            result = "eof"
            break
        got += d
    after = time.monotonic() - t0
    if result == "eof":
        # shutdown(SHUT_RDWR) sends the FIN; a close() with bytes of ours
        # still unread on the other side then sends a RST
        time.sleep(0.2)
        info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
        if info[0] == 7:          # TCP_CLOSE: reset after the FIN
            result = "eof, then reset"
    out.update(result=result, after=round(after, 4), answered=got.hex())
    s.close()
    print("REPORT " + json.dumps(out), flush=True)
    return 0


# =========================================================================== the test side

class PeerError(RuntimeError):
    pass


class Legacy2016Peer:
    """The peer process in a lab node's namespace (instead of a daemon there)."""

    def __init__(self, node, *, primary: bool, tcp: bool = True, interval: float = 1.0,
                 ifname: str = "mesh0"):
        self.node = node
        self.cfg = {"ifname": ifname, "primary": primary, "tcp": tcp, "interval": interval}
        self.proc: subprocess.Popen | None = None
        self.seq = 0
        self.replies: dict[int, dict] = {}
        self.cond = threading.Condition()
        self.ready: dict | None = None
        self.err_log = os.path.join(node.lab.logdir, f"{node.name}.legacy2016.stderr")
        self.final: dict | None = None
        self.crashed: dict | None = None     # the "E crash" event: where the real daemon segfaults
        node.label = f"legacy2016/{'primary' if primary else 'secondary'}{' -t' if tcp else ''}"

    @property
    def address(self) -> str:
        return self.node.ll6

    def start(self, timeout: float = 10.0) -> "Legacy2016Peer":
        self._err = open(self.err_log, "wb")
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.node.ns, PY, HERE, "serve",
                                      json.dumps(self.cfg)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err,
                                     start_new_session=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        with self.cond:
            if not self.cond.wait_for(lambda: self.ready is not None or self.proc.poll() is not None,
                                      timeout):
                raise PeerError(f"{self.node.name}: legacy peer not ready after {timeout}s\n{self.stderr()}")
        if self.ready is None:
            raise PeerError(f"{self.node.name}: legacy peer exited ({self.proc.returncode})\n{self.stderr()}")
        return self

    def _read(self):
        for line in self.proc.stdout:
            line = line.decode(errors="replace").rstrip("\n")
            kind, _, body = line.partition(" ")
            try:
                obj = json.loads(body)
            except ValueError:
                continue
            with self.cond:
                if kind == "E" and obj.get("event") == "ready":
                    self.ready = obj
                elif kind == "E" and obj.get("event") == "crash":
                    self.crashed = obj
                elif kind == "R":
                    self.replies[obj.get("seq")] = obj
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def stderr(self) -> str:
        try:
            with open(self.err_log, "rb") as f:
                return f.read().decode(errors="replace")[-4000:]
        except OSError:
            return ""

    def check(self):
        if self.proc is None or self.proc.poll() is not None:
            raise PeerError(f"{self.node.name}: legacy peer is not running "
                            f"(exit {None if self.proc is None else self.proc.returncode})"
                            + (f"; it went where the 2016 daemon crashes: {self.crashed['reason']}"
                               if self.crashed else "") + f"\n{self.stderr()}")

    def send(self, op: str, **args) -> int:
        self.check()
        with self.cond:
            self.seq += 1
            seq = self.seq
        self.proc.stdin.write((json.dumps({"op": op, "seq": seq, **args}) + "\n").encode())
        self.proc.stdin.flush()
        return seq

    def wait_reply(self, seq: int, timeout: float) -> dict:
        with self.cond:
            ok = self.cond.wait_for(lambda: seq in self.replies or self.proc.poll() is not None, timeout)
            if seq in self.replies:
                return self.replies.pop(seq)
        if not ok:
            raise PeerError(f"{self.node.name}: no reply to command {seq} within {timeout}s")
        raise PeerError(f"{self.node.name}: legacy peer exited ({self.proc.returncode})\n{self.stderr()}")

    def call(self, op: str, timeout: float = 10.0, **args) -> dict:
        return self.wait_reply(self.send(op, **args), timeout)

    def set(self, rtype: int, data: bytes, version: int = 0):
        self.call("set", type=rtype, data=data.hex(), version=version)

    def tick(self):
        self.call("tick")

    def request(self, rtype: int, timeout: float = 25.0) -> dict:
        """Like `alfred -r TYPE` on this node. Returns the reply: ok,
        records {mac: bytes}, forwarded, conn (id of the connection that
        carried it), took."""
        r = self.call("request", timeout=timeout, type=rtype)
        if "records" in r:
            r["records"] = {m: bytes.fromhex(h) for m, h in r["records"].items()}
        return r

    def report(self) -> dict:
        return self.call("report")["report"]

    def store(self, rtype: int | None = None) -> dict[str, bytes]:
        return {e["source"]: bytes.fromhex(e["data"]) for e in self.report()["store"]
                if rtype is None or e["type"] == rtype}

    def wait_until(self, pred, timeout: float, what: str, interval: float = 0.1) -> dict:
        end = time.monotonic() + timeout
        while True:
            rep = self.report()
            if pred(rep):
                return rep
            if time.monotonic() > end:
                raise PeerError(f"{self.node.name}: not within {timeout:g}s: {what}")
            time.sleep(interval)

    def stop(self) -> dict | None:
        if self.proc is None:
            return self.final
        if self.proc.poll() is None:
            try:
                self.final = self.call("stop", timeout=5)["report"]
            except (PeerError, OSError):
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._err.close()
        self.proc = None
        return self.final


def probe_once(node, to: str, packet: bytes, wait: float = 2.0) -> dict:
    """From `node`'s namespace, one connection to `to`:16962 carrying `packet`."""
    cp = subprocess.run(["ip", "netns", "exec", node.ns, PY, HERE, "probe",
                         json.dumps({"to": to, "packet": packet.hex(), "wait": wait})],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=wait + 15)
    for line in cp.stdout.decode(errors="replace").splitlines():
        if line.startswith("REPORT "):
            return json.loads(line[7:])
    raise PeerError(f"probe gave no report ({cp.returncode}): {cp.stderr.decode(errors='replace')[-2000:]}")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("serve", "probe"):
        sys.stderr.write("usage: legacy2016_peer.py serve|probe JSON\n")
        sys.exit(2)
    conf = json.loads(sys.argv[2])
    sys.exit(serve(conf) if sys.argv[1] == "serve" else probe(conf))
