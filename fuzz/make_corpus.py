#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/).

Every seed is a small valid input in the layout the target's header comment
describes, together covering all packet types 0-10 and the main engine paths.
The output is deterministic; rerun after changing an input layout:

    python3 fuzz/make_corpus.py            # rewrites fuzz/corpus/ and fuzz/findings/
    python3 fuzz/make_corpus.py DIR        # writes DIR/corpus/ and DIR/findings/ instead

Seeds named regression-* (reproducers of fixed problems, copied in by hand)
are kept. FINDINGS are inputs that trip a check on code with an open problem;
they go to fuzz/findings/ so that the short run's seeds keep passing.
"""
import os
import shutil
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# ---------------------------------------------------------------- packets

PUSH, ANNOUNCE, REQUEST, TXEND, ERROR, MODESWITCH = 0, 1, 2, 3, 4, 5
CHANGE_IFACE, CHANGE_BAT, STATUS, EVENT_REGISTER, EVENT_NOTIFY = 6, 7, 8, 9, 10

PEER0 = bytes([0x02, 0x11, 0x22, 0x33, 0x44, 0x50])  # peer k = last byte + k


def peer(k):
    return PEER0[:5] + bytes([PEER0[5] + k])


def tlv(ptype, body, version=0):
    return struct.pack(">BBH", ptype, version, len(body)) + body


def record(mac, rtype, version, data):
    return mac + struct.pack(">BBH", rtype, version, len(data)) + data


def push(tx, seq, records):
    return tlv(PUSH, struct.pack(">HH", tx, seq) + b"".join(record(*r) for r in records))


def announce():
    return tlv(ANNOUNCE, b"")


def request(rtype, tx):
    return tlv(REQUEST, struct.pack(">BH", rtype, tx))


def txend(tx, count):
    return tlv(TXEND, struct.pack(">HH", tx, count))


def error(tx, code=1):
    return tlv(ERROR, struct.pack(">H", tx) + struct.pack("<H", code))


def modeswitch(mode):
    return tlv(MODESWITCH, bytes([mode]))


def name_field(name, size):
    raw = name.encode()[: size - 1]
    return raw + b"\0" * (size - len(raw))


def change_iface(names):
    return tlv(CHANGE_IFACE, name_field(names, 256))


def change_bat(name):
    return tlv(CHANGE_BAT, name_field(name, 16))


def status(mode=None, ifaces=(), bat=None):
    body = b""
    if mode is not None:
        body += struct.pack(">BBHB", 0, 0, 1, mode)
    for name, active in ifaces:
        body += struct.pack(">BBH", 1, 0, 17) + name_field(name, 16) + bytes([1 if active else 0])
    if bat is not None:
        body += struct.pack(">BBH", 2, 0, 16) + name_field(bat, 16)
    return tlv(STATUS, body)


def event_register():
    return tlv(EVENT_REGISTER, b"")


def event_notify(rtype, mac):
    return tlv(EVENT_NOTIFY, bytes([rtype]) + mac)


ALL_TYPES = [
    push(1, 0, [(peer(0), 64, 0, b"hello"), (peer(1), 65, 1, b"world!")]),
    announce(),
    request(64, 0x1234),
    txend(1, 1),
    error(0x1234),
    modeswitch(1),
    change_iface("mesh0,mesh1"),
    change_bat("bat0"),
    status(),
    event_register(),
    event_notify(64, peer(0)),
]

# ---------------------------------------------------------------- datagram_fuzz

PRIMARY, UPDATE_CMD, SMALL_LIMITS, TQ_FAILS, BAT_NONE, TWO_IFACES, IFACES_NONE = (
    1, 2, 4, 8, 16, 32, 64)
ADV = {"0": 0, "1ms": 1, "200ms": 2, "1s": 3, "4s": 4, "10s": 5, "61s": 6, "601s": 7}


def op(code, arg=0, adv="0"):
    return bytes([code | arg << 3 | ADV[adv] << 5])


def dg(k, pkt, how=0, adv="0"):
    """A datagram from peer k; how: 0 first iface, 1 second, 2 stream, 3 unknown iface."""
    return op(k, how, adv) + struct.pack(">H", len(pkt)) + pkt


def tick(adv="0"):
    return op(4, 0, adv)


def timer(arg=0, adv="0"):
    return op(5, arg, adv)


def client_request(rtype, tx, adv="0"):
    return op(6, 0, adv) + struct.pack(">BH", rtype, tx)


def answer(shape, records, max_packet=None, lose=0, dup=0):
    """The server's answer to the oldest forwarded request. shape: 1 lose packet `lose`,
    2 duplicate packet `dup`, 4 reverse, 8 from the wrong peer, 0x80 packets of at most
    `max_packet` bytes. records: (type_byte, version, size); odd type_byte = requested type."""
    out = op(6, 1) + bytes([shape])
    if shape & 0x80:
        out += struct.pack(">H", max_packet - 64)
    out += bytes([len(records)])
    for t, v, size in records:
        out += struct.pack(">BBH", t, v, size)
    if shape & 1:
        out += bytes([lose])
    if shape & 2:
        out += bytes([dup])
    return out


def replay(arg=2):
    return op(6, arg)


def ipc(msg, adv="0"):
    return op(7, 0, adv) + struct.pack(">H", len(msg)) + msg


def set_data(rtype, version, size, who=0):
    return op(7, 1) + struct.pack(">BBHB", rtype, version, size, who)


def ipc_modeswitch(mode):
    return op(7, 2) + bytes([mode])


def status_and_bat(n):
    return op(7, 3) + bytes([n])


def dgram_seed(flags, *ops):
    return bytes([flags]) + PEER0 + b"".join(ops)


DATAGRAM = {
    # A primary collects a two-packet transaction, announces, syncs and answers.
    "primary_transaction": dgram_seed(
        PRIMARY,
        dg(0, push(7, 0, [(peer(0), 64, 0, b"a")])),
        dg(0, push(7, 1, [(peer(2), 65, 0, b"bb")])),
        dg(0, txend(7, 2)),
        dg(1, announce()), tick("1s"),
        dg(2, request(64, 99)),
    ),
    # txend before its pushes, packets arriving out of order, on a stream.
    "primary_txend_first": dgram_seed(
        PRIMARY | TWO_IFACES,
        dg(0, txend(9, 2), 1),
        dg(0, push(9, 1, [(peer(0), 70, 0, b"x" * 40)]), 1),
        dg(0, push(9, 0, [(peer(3), 70, 0, b"y" * 40)]), 2),
        dg(1, announce(), 1), tick("10s"),
    ),
    # Every packet type as a datagram; the unix-socket ones are dropped.
    "all_types_primary": dgram_seed(PRIMARY, *[dg(i % 4, p) for i, p in enumerate(ALL_TYPES)]),
    "all_types_secondary": dgram_seed(0, *[dg(i % 4, p, i % 3) for i, p in enumerate(ALL_TYPES)]),
    # Malformed: wrong version, truncated, unknown type, trailing bytes, unknown iface.
    "malformed": dgram_seed(
        PRIMARY,
        dg(0, tlv(ANNOUNCE, b"", version=1)),
        dg(0, push(3, 0, [(peer(0), 64, 0, b"abc")])[:-2]),
        dg(0, tlv(11, b"zz")),
        dg(0, txend(3, 1) + b"trailing"),
        dg(0, request(1, 2), 3),
        dg(1, tlv(REQUEST, b"\x01")),
    ),
    # A secondary finds a primary, forwards a client request and gets the answer.
    "secondary_forward_answer": dgram_seed(
        0,
        dg(0, announce()), tick(),
        client_request(64, 0x4242),
        answer(0, [(1, 0, 10), (1, 1, 300), (3, 0, 5)]),
        client_request(65, 0x4243, "1s"),
        timer(1),
    ),
    # Multi-packet answers (small packets), lost, duplicated, reversed, misrouted.
    "secondary_answer_damaged": dgram_seed(
        0,
        dg(1, announce()), tick(),
        client_request(64, 1), answer(0x80 | 2 | 4, [(1, 0, 100), (1, 0, 100), (1, 0, 100)], 256, dup=1),
        client_request(64, 2), answer(1, [(1, 0, 10), (1, 0, 20)]),
        client_request(64, 3), answer(8, [(1, 0, 10)]),
        timer(0, "10s"),
    ),
    # Client data is synced to the best primary, big enough for two packets.
    "secondary_sync_big": dgram_seed(
        0,
        set_data(64, 0, 40000), set_data(65, 1, 40000),
        dg(2, announce()), tick("10s"), tick("10s"),
    ),
    # Primary syncs first-hand data to another primary; the transaction is replayed.
    "primary_sync_replay": dgram_seed(
        PRIMARY | UPDATE_CMD,
        set_data(66, 0, 1000, 1), set_data(67, 0, 10),
        dg(0, push(5, 0, [(peer(0), 68, 0, b"first-hand")])), dg(0, txend(5, 1)),
        dg(1, announce()), tick("10s"), replay(2), replay(3), tick("10s"),
    ),
    # Transactions that never finish time out; servers and records expire.
    "timeouts": dgram_seed(
        PRIMARY | UPDATE_CMD,
        dg(0, push(1, 0, [(peer(0), 64, 0, b"never")])),
        dg(1, announce()), dg(2, txend(2, 3)),
        timer(0, "4s"), timer(0, "10s"), tick("61s"),
        dg(0, push(3, 0, [(peer(0), 64, 0, b"kept")])), dg(0, txend(3, 1)),
        tick("601s"), timer(1),
    ),
    # Small transaction limits: table full, buffer full.
    "limits": dgram_seed(
        PRIMARY | SMALL_LIMITS,
        *[dg(k, push(k, 0, [(peer(k), 64, 0, b"z" * 600)])) for k in range(4)],
        dg(0, push(50, 1, [(peer(0), 64, 0, b"z" * 900)])),
        dg(0, txend(50, 2)),
    ),
    # Unix-socket operations through the datagram target's dispatch.
    "ipc_ops": dgram_seed(
        0,
        ipc(push(0, 0, [(bytes(6), 64, 0, b"local")])),
        ipc(request(64, 77)), ipc(modeswitch(1)), ipc(change_iface("mesh0,mesh1,mesh0")),
        ipc(change_bat("none")), ipc(status()), ipc(event_register()), ipc_modeswitch(0),
        status_and_bat(5),
    ),
    # -i none; TQ queries fail; interface going down and up.
    "ifaces_none": dgram_seed(IFACES_NONE | PRIMARY, set_data(64, 0, 10, 3), dg(0, announce()), tick()),
    "tq_fails_iface_flap": dgram_seed(
        TQ_FAILS,
        dg(0, announce()), dg(1, announce()), tick(), timer(2), client_request(64, 5),
        timer(3), client_request(64, 6), tick("1s"),
    ),
    "bat_none": dgram_seed(BAT_NONE, dg(0, announce()), dg(3, announce()), tick(), client_request(70, 9)),
    # Issue 12 finding 8 (an oracle bug): the request went out on mesh0, then a
    # change-interface message replaced mesh0, so the intact answer arriving on
    # mesh0 is dropped (unknown interface) and the client gets its error at the
    # timeout. The oracle used to demand the records at once.
    "secondary_answer_after_iface_change": dgram_seed(
        0,
        dg(1, announce()), tick(),
        client_request(92, 0x5C5C),
        client_request(64, 77),
        ipc(change_iface("mesh9")),
        answer(0, [(1, 0, 10)]),
        answer(0, [(1, 0, 10)]),
        timer(1),
    ),
}

# ---------------------------------------------------------------- datagram_fuzz, heap mode
# Configuration byte with bit 7 set: see fuzz/heap_mode.hpp for the layout.

HEAP_MODE = 0x80


def hop(code, arg=0, adv="0"):
    return op(code, arg, adv)


def h_dgram(sender, pkt, adv="0"):
    return hop(0, 0, adv) + struct.pack(">BH", sender, len(pkt)) + pkt


def h_flood(sender, count, template, a=(0xFF, 0xFF), b=(0xFF, 0xFF), adv="0"):
    """count copies of template; copy i gets i >> shift added to the u16 at each (offset, shift).
    sender 0x80 | s: a fresh sender MAC every 2**s packets."""
    return (hop(1, 0, adv) + struct.pack(">BHBBBBH", sender, count, a[0], a[1], b[0], b[1], len(template))
            + template)


def h_tx(sender, tx, records, rtype, size, shape=0, adv="0"):
    """A transaction of `records` records of `size` bytes; shape 1: sources are the sender,
    2: no txend, 4: packets of at most 1232 bytes."""
    return hop(2, 0, adv) + struct.pack(">BHHBHB", sender, tx, records, rtype, size, shape)


def h_tick(adv="0"):
    return hop(3, 0, adv)


def h_timer(jump=False, adv="0"):
    return hop(4, 1 if jump else 0, adv)


def h_request(rtype, tx, adv="0"):
    return hop(5, 0, adv) + struct.pack(">BH", rtype, tx)


def h_modeswitch(mode):
    return hop(6) + bytes([mode])


def heap_seed(flags, *ops):
    return bytes([HEAP_MODE | flags]) + PEER0 + b"".join(ops)


# Offsets in a push-data packet: tx id at 4, seqno at 6, first record's MAC at 8-13.
EMPTY_PUSH = push(0, 0, [])

DATAGRAM.update({
    # Honest traffic well inside the ratio: a primary gets 200 records of 100 bytes
    # (in 1232-byte packets) and 50 of 2 KB, syncs, serves a request, expires.
    "heap_honest_primary": heap_seed(
        PRIMARY,
        h_dgram(1, announce()),
        h_tx(0, 1, 200, 64, 100, 4), h_tx(2, 2, 50, 65, 2048, 1),
        h_tick("1s"), h_dgram(3, request(64, 9)), h_tick("10s"),
    ),
    # A secondary forwards client requests and gets the answers as transactions.
    "heap_secondary_answers": heap_seed(
        0,
        h_dgram(1, announce()), h_tick(),
        h_request(64, 0x100), h_tx(1, 0x100, 30, 64, 300),
        h_request(65, 0x101), h_request(66, 0x102), h_tx(1, 0x101, 5, 65, 10, 2),
        h_timer(True),
    ),
    # The floods, each well under the point where it trips (the findings below are
    # the same at full size), so the fuzzer starts next to them.
    "heap_small_floods": heap_seed(
        PRIMARY,
        h_flood(0, 60, EMPTY_PUSH, a=(6, 0), b=(4, 4)),
        h_flood(0x80, 50, announce()),
        h_tx(1, 7, 30, 64, 0),
        h_flood(2, 10, txend(0, 3), a=(4, 0)),
        h_timer(False, "10s"), h_tick(),
    ),
})

# Inputs that trip the heap check on code with the problem (f8afe21 and
# before); kept in fuzz/findings/. All three pass since the bounds are kept in
# real memory, and copies are seeds (corpus/datagram/regression-heap-*).
# Replay: build-fuzz/datagram_fuzz FILE.
FINDINGS = {
    # One peer, 8-byte push data with no records: 64 transaction ids x 32 seqnos
    # (the 64 x 65,535, cut to the mode's packet budget). About 112 bytes
    # of heap per packet while the table counts 8.
    "heap-empty-push-flood": heap_seed(
        PRIMARY, h_flood(0, 2048, EMPTY_PUSH, a=(6, 0), b=(4, 5))),
    # 2,000 zero-length records (10 bytes each on the wire) under fresh source
    # MACs, kept for 600 s: 144-224 bytes of heap each. Four transactions of
    # 500 records in 1232-byte packets, each inside the mode's 16 KiB
    # transaction buffer.
    "heap-empty-record-flood": heap_seed(
        PRIMARY, *[h_tx(0, 1 + k, 500, 64, 0, 4) for k in range(4)]),
    # Announcements (4 bytes) from 2,048 fresh MACs: a server entry each, kept 60 s.
    "heap-announce-flood": heap_seed(0, h_flood(0x80, 2048, announce())),
}

# ---------------------------------------------------------------- stream_fuzz


def stream_seed(sizes, *packets):
    return bytes([len(sizes)]) + bytes(sizes) + b"".join(packets)


BIG_PUSH = push(4, 0, [(peer(1), 64, 0, bytes(range(256)) * 20)])

STREAM = {
    "all_types_bytewise": stream_seed([1], *ALL_TYPES),
    "all_types_whole": stream_seed([], *ALL_TYPES),
    "mixed_chunks": stream_seed([3, 0, 7, 250], *ALL_TYPES, *ALL_TYPES[:4]),
    "big_push_4k": stream_seed([0xF0, 5], BIG_PUSH, txend(4, 1)),
    "bad_version": stream_seed([2], announce(), tlv(ANNOUNCE, b"", version=1), announce()),
    "unknown_type": stream_seed([4], request(1, 2), tlv(11, b"abcd"), announce()),
    "length_too_big": stream_seed([1, 2], txend(1, 0), struct.pack(">BBH", PUSH, 0, 0xFFFF), b"x" * 8),
    "partial_at_end": stream_seed([5], announce(), BIG_PUSH[:100]),
    "header_split": stream_seed([2, 3, 1], txend(1, 2), push(1, 0, []), push(1, 1, [])),
    "empty_packets": stream_seed([1, 4], announce(), event_register(), status(), announce()),
    "status_items": stream_seed(
        [9], status(1, [("mesh0", True), ("mesh1", False)], "bat0"),
        tlv(STATUS, struct.pack(">BBH", 9, 0, 2) + b"??")),
}

# ---------------------------------------------------------------- ipc_fuzz

IPC_PRIMARY, IPC_BAT_NONE, IPC_SERVER = 1, 2, 4


def client(msg, chunk=None, trailing=b""):
    """chunk byte c: reads of c+1 bytes (< 0xf0) or (c - 0xef) * 4 KiB. By default one
    read of exactly what this client sends, so the next client starts right after it."""
    if chunk is None:
        n = len(msg) + len(trailing)
        chunk = n - 1 if n <= 0xF0 else 0xEF + (n + 4095) // 4096
    return bytes([chunk]) + msg + trailing


def ipc_seed(flags, *clients):
    return bytes([flags]) + b"".join(clients)


IPC = {
    "set_then_request": ipc_seed(
        0, client(push(0, 0, [(bytes(6), 64, 0, b"data")])), client(request(64, 1)), client(status())),
    "primary_foreign_source": ipc_seed(
        IPC_PRIMARY, client(push(0, 0, [(peer(3), 65, 2, b"x" * 100)])), client(request(65, 2))),
    "secondary_forward": ipc_seed(IPC_SERVER, client(request(64, 3)), client(request(64, 3))),
    "modes_and_ifaces": ipc_seed(
        0, client(modeswitch(1)), client(change_iface("mesh0,mesh1")), client(modeswitch(0)),
        client(status()), client(change_iface("mesh2")), client(modeswitch(0)), client(modeswitch(7))),
    "ifaces_none": ipc_seed(IPC_PRIMARY, client(change_iface("none")), client(status()),
                            client(push(0, 0, [(bytes(6), 64, 0, b"no iface")]))),
    "refused_multi_secondary": ipc_seed(0, client(change_iface("a,b")), client(status())),
    "bat_and_events": ipc_seed(
        IPC_BAT_NONE, client(change_bat("bat1")), client(event_register()), client(status())),
    "bytewise_reads": ipc_seed(
        0, client(request(64, 5), 0), client(request(66, 6), trailing=b"ignored after the message"),
        client(push(0, 0, [(bytes(6), 66, 0, b"z")]), 2)),
    "bad_request_length": ipc_seed(0, client(tlv(REQUEST, b"\x40\x00\x01\x00"))),
    "network_types": ipc_seed(
        0, client(announce()), client(txend(1, 1)), client(error(5)), client(event_notify(64, peer(0)))),
    "malformed": ipc_seed(0, client(tlv(ANNOUNCE, b"", 1)), client(tlv(12, b"")), client(tlv(PUSH, b"\0"))),
    "hangup_midway": ipc_seed(0, client(request(64, 9)), client(push(0, 0, [(bytes(6), 64, 0, b"abc")])[:9])),
    "status_with_items": ipc_seed(0, client(status(1, [("x", True)], "bat0"))),
    "push_many_records": ipc_seed(
        IPC_PRIMARY,
        client(push(0, 0, [(peer(0), 64, 0, b"1"), (peer(1), 65, 0, b"2")]), 0xF0)),
}

TARGETS = {"datagram": DATAGRAM, "stream": STREAM, "ipc": IPC}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else HERE
    root = os.path.join(out, "corpus")
    total = 0
    for target, seeds in TARGETS.items():
        d = os.path.join(root, target)
        # regression-* seeds are reproducers of fixed problems, kept by hand.
        kept = {}
        if os.path.isdir(d):
            for name in os.listdir(d):
                if name.startswith("regression-"):
                    with open(os.path.join(d, name), "rb") as f:
                        kept[name] = f.read()
            shutil.rmtree(d)
        os.makedirs(d)
        for name, data in sorted({**kept, **seeds}.items()):
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
            total += len(data)
        print(f"{target}: {len(seeds)} seeds, {len(kept)} regressions kept")
    d = os.path.join(out, "findings")
    os.makedirs(d, exist_ok=True)
    for name, data in sorted(FINDINGS.items()):
        with open(os.path.join(d, "datagram-" + name), "wb") as f:
            f.write(data)
    print(f"findings: {len(FINDINGS)} inputs")
    print(f"total {total} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
