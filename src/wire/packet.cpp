#include "wire/packet.hpp"

#include <algorithm>
#include <cstring>

namespace alfred::wire {
namespace {

std::uint16_t be16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}

void put16(std::vector<std::uint8_t>& out, std::uint16_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 8));
  out.push_back(static_cast<std::uint8_t>(v & 0xff));
}

void put_tlv(std::vector<std::uint8_t>& out, std::uint8_t type, std::uint16_t length) {
  out.push_back(type);
  out.push_back(kVersion);
  put16(out, length);
}

// A fixed-size, NUL-padded name field; always NUL-terminated on the wire.
void put_name(std::vector<std::uint8_t>& out, const std::string& name, std::size_t size) {
  std::size_t n = std::min(name.size(), size - 1);
  out.insert(out.end(), name.begin(), name.begin() + static_cast<std::ptrdiff_t>(n));
  out.insert(out.end(), size - n, 0);
}

std::string get_name(const std::uint8_t* p, std::size_t size) {
  const auto* end = static_cast<const std::uint8_t*>(std::memchr(p, 0, size));
  std::size_t n = end ? static_cast<std::size_t>(end - p) : size - 1;
  return std::string(reinterpret_cast<const char*>(p), n);
}

DecodeResult fail(std::string why) {
  DecodeResult r;
  r.error = std::move(why);
  return r;
}

DecodeResult ok(Packet p) {
  DecodeResult r;
  r.ok = true;
  r.packet = std::move(p);
  return r;
}

DecodeResult decode_push(std::span<const std::uint8_t> body) {
  if (body.size() < kTxMgmtSize) return fail("push data shorter than its transaction header");
  PushData push;
  push.tx_id = be16(body.data());
  push.seqno = be16(body.data() + 2);
  // Records are read while a whole record header is left; the first one whose
  // data would run past the TLV ends the list, and it and everything after it
  // are ignored. That is upstream's rule (recv.c in 2023.0 and 2026 alike):
  // the records before a bad one are kept, a packet without any whole record
  // is still a packet of its transaction.
  std::size_t pos = kTxMgmtSize;
  while (body.size() - pos >= kDataHeaderSize) {
    std::size_t len = be16(body.data() + pos + 8);
    if (body.size() - pos - kDataHeaderSize < len) break;
    RecordView rec;
    std::memcpy(rec.source.data(), body.data() + pos, 6);
    rec.type = body[pos + 6];
    rec.version = body[pos + 7];
    rec.data = body.subspan(pos + kDataHeaderSize, len);
    pos += kDataHeaderSize + len;
    push.records.push_back(rec);
  }
  DecodeResult r = ok(std::move(push));
  r.ignored_bytes = body.size() - pos;
  return r;
}

DecodeResult decode_server_status(std::span<const std::uint8_t> body) {
  ServerStatus st;
  std::size_t pos = 0;
  while (pos < body.size()) {
    TlvHeader h;
    if (!read_tlv_header(body.subspan(pos), h)) return fail("server status item truncated");
    if (h.version != kVersion) return fail("server status item with wrong version");
    if (body.size() - pos - kTlvSize < h.length) return fail("server status item too long");
    const std::uint8_t* v = body.data() + pos + kTlvSize;
    switch (static_cast<StatusItem>(h.type)) {
      case StatusItem::OpMode:
        if (h.length != 1) return fail("server status mode item of wrong size");
        st.has_mode = true;
        st.mode = v[0];
        break;
      case StatusItem::NetIface:
        if (h.length != kIfNameSize + 1) return fail("server status interface item of wrong size");
        st.interfaces.push_back({get_name(v, kIfNameSize), v[kIfNameSize] == 1});
        break;
      case StatusItem::BatIface:
        if (h.length != kIfNameSize) return fail("server status batman item of wrong size");
        st.has_bat_iface = true;
        st.bat_iface = get_name(v, kIfNameSize);
        break;
      default:
        // Unknown items are skipped so newer daemons can add some.
        break;
    }
    pos += kTlvSize + h.length;
  }
  return ok(std::move(st));
}

}  // namespace

bool read_tlv_header(std::span<const std::uint8_t> bytes, TlvHeader& out) {
  if (bytes.size() < kTlvSize) return false;
  out.type = bytes[0];
  out.version = bytes[1];
  out.length = be16(bytes.data() + 2);
  return true;
}

DecodeResult decode(std::span<const std::uint8_t> bytes) {
  TlvHeader h;
  if (!read_tlv_header(bytes, h)) return fail("packet shorter than a TLV header");
  if (h.version != kVersion)
    return fail("unsupported version " + std::to_string(h.version));
  if (bytes.size() - kTlvSize < h.length)
    return fail("truncated: TLV announces " + std::to_string(h.length) + " bytes, " +
                std::to_string(bytes.size() - kTlvSize) + " present");
  auto body = bytes.subspan(kTlvSize, h.length);
  switch (h.type) {
    case static_cast<std::uint8_t>(Type::PushData):
      return decode_push(body);
    case static_cast<std::uint8_t>(Type::AnnouncePrimary):
      return ok(AnnouncePrimary{});
    case static_cast<std::uint8_t>(Type::Request):
      if (body.size() < 3) return fail("request body too short");
      return ok(Request{body[0], be16(body.data() + 1)});
    case static_cast<std::uint8_t>(Type::StatusTxEnd):
      if (body.size() < kTxMgmtSize) return fail("txend body too short");
      return ok(TxEnd{be16(body.data()), be16(body.data() + 2)});
    case static_cast<std::uint8_t>(Type::StatusError):
      if (body.size() < kTxMgmtSize) return fail("error status body too short");
      return ok(StatusError{be16(body.data()), {body[2], body[3]}});
    case static_cast<std::uint8_t>(Type::ModeSwitch):
      if (body.size() < 1) return fail("modeswitch body too short");
      return ok(ModeSwitch{body[0]});
    case static_cast<std::uint8_t>(Type::ChangeInterface):
      if (body.size() < kIfaceListSize) return fail("change-interface body too short");
      return ok(ChangeInterface{get_name(body.data(), kIfaceListSize)});
    case static_cast<std::uint8_t>(Type::ChangeBatIface):
      if (body.size() < kIfNameSize) return fail("change-bat-iface body too short");
      return ok(ChangeBatIface{get_name(body.data(), kIfNameSize)});
    case static_cast<std::uint8_t>(Type::ServerStatus):
      return decode_server_status(body);
    case static_cast<std::uint8_t>(Type::EventRegister):
      return ok(EventRegister{});
    case static_cast<std::uint8_t>(Type::EventNotify): {
      if (body.size() < 7) return fail("event notify body too short");
      EventNotify ev;
      ev.type = body[0];
      std::memcpy(ev.source.data(), body.data() + 1, 6);
      return ok(ev);
    }
    default:
      return fail("unknown packet type " + std::to_string(h.type));
  }
}

std::size_t encode_push_header(std::vector<std::uint8_t>& out, std::uint16_t tx_id,
                               std::uint16_t seqno) {
  std::size_t start = out.size();
  put_tlv(out, static_cast<std::uint8_t>(Type::PushData), 0);
  put16(out, tx_id);
  put16(out, seqno);
  return start;
}

void append_record(std::vector<std::uint8_t>& out, const Mac& source, std::uint8_t type,
                   std::uint8_t version, std::span<const std::uint8_t> data) {
  out.insert(out.end(), source.begin(), source.end());
  out.push_back(type);
  out.push_back(version);
  put16(out, static_cast<std::uint16_t>(data.size()));
  out.insert(out.end(), data.begin(), data.end());
}

void finish_tlv(std::vector<std::uint8_t>& out, std::size_t offset) {
  std::size_t len = out.size() - offset - kTlvSize;
  out[offset + 2] = static_cast<std::uint8_t>(len >> 8);
  out[offset + 3] = static_cast<std::uint8_t>(len & 0xff);
}

std::vector<std::uint8_t> encode(const Packet& packet) {
  std::vector<std::uint8_t> out;
  struct Visitor {
    std::vector<std::uint8_t>& out;
    void operator()(const PushData& p) {
      encode_push_header(out, p.tx_id, p.seqno);
      for (const auto& r : p.records) append_record(out, r.source, r.type, r.version, r.data);
      finish_tlv(out, 0);
    }
    void operator()(const AnnouncePrimary&) {
      put_tlv(out, static_cast<std::uint8_t>(Type::AnnouncePrimary), 0);
    }
    void operator()(const Request& r) {
      put_tlv(out, static_cast<std::uint8_t>(Type::Request), 3);
      out.push_back(r.requested_type);
      put16(out, r.tx_id);
    }
    void operator()(const TxEnd& t) {
      put_tlv(out, static_cast<std::uint8_t>(Type::StatusTxEnd), 4);
      put16(out, t.tx_id);
      put16(out, t.seqno);
    }
    void operator()(const StatusError& e) {
      put_tlv(out, static_cast<std::uint8_t>(Type::StatusError), 4);
      put16(out, e.tx_id);
      out.push_back(e.code_raw[0]);
      out.push_back(e.code_raw[1]);
    }
    void operator()(const ModeSwitch& m) {
      put_tlv(out, static_cast<std::uint8_t>(Type::ModeSwitch), 1);
      out.push_back(m.mode);
    }
    void operator()(const ChangeInterface& c) {
      put_tlv(out, static_cast<std::uint8_t>(Type::ChangeInterface), kIfaceListSize);
      put_name(out, c.interfaces, kIfaceListSize);
    }
    void operator()(const ChangeBatIface& c) {
      put_tlv(out, static_cast<std::uint8_t>(Type::ChangeBatIface), kIfNameSize);
      put_name(out, c.bat_iface, kIfNameSize);
    }
    void operator()(const ServerStatus& s) {
      put_tlv(out, static_cast<std::uint8_t>(Type::ServerStatus), 0);
      if (s.has_mode) {
        out.push_back(static_cast<std::uint8_t>(StatusItem::OpMode));
        out.push_back(kVersion);
        put16(out, 1);
        out.push_back(s.mode);
      }
      for (const auto& i : s.interfaces) {
        out.push_back(static_cast<std::uint8_t>(StatusItem::NetIface));
        out.push_back(kVersion);
        put16(out, kIfNameSize + 1);
        put_name(out, i.name, kIfNameSize);
        out.push_back(i.active ? 1 : 0);
      }
      if (s.has_bat_iface) {
        out.push_back(static_cast<std::uint8_t>(StatusItem::BatIface));
        out.push_back(kVersion);
        put16(out, kIfNameSize);
        put_name(out, s.bat_iface, kIfNameSize);
      }
      finish_tlv(out, 0);
    }
    void operator()(const EventRegister&) {
      put_tlv(out, static_cast<std::uint8_t>(Type::EventRegister), 0);
    }
    void operator()(const EventNotify& e) {
      put_tlv(out, static_cast<std::uint8_t>(Type::EventNotify), 7);
      out.push_back(e.type);
      out.insert(out.end(), e.source.begin(), e.source.end());
    }
  };
  std::visit(Visitor{out}, packet);
  return out;
}

Ipv6Bytes mac_to_link_local(const Mac& mac) {
  Ipv6Bytes a{};
  a[0] = 0xfe;
  a[1] = 0x80;
  a[8] = mac[0] ^ 0x02;
  a[9] = mac[1];
  a[10] = mac[2];
  a[11] = 0xff;
  a[12] = 0xfe;
  a[13] = mac[3];
  a[14] = mac[4];
  a[15] = mac[5];
  return a;
}

bool is_eui64_link_local(const Ipv6Bytes& a) {
  if (a[0] != 0xfe || a[1] != 0x80 || a[11] != 0xff || a[12] != 0xfe) return false;
  for (int i = 2; i < 8; ++i)
    if (a[i] != 0) return false;
  return true;
}

std::optional<Mac> link_local_to_mac(const Ipv6Bytes& a) {
  if (!is_eui64_link_local(a)) return std::nullopt;
  Mac m{static_cast<std::uint8_t>(a[8] ^ 0x02), a[9], a[10], a[13], a[14], a[15]};
  if (!is_valid_unicast(m)) return std::nullopt;
  return m;
}

std::string_view type_name(std::uint8_t type) {
  static constexpr std::string_view names[] = {
      "push data",        "announce primary", "request",       "txend",
      "error",            "modeswitch",       "change interface", "change bat iface",
      "server status",    "event register",   "event notify"};
  if (type <= kMaxType) return names[type];
  return "unknown";
}

}  // namespace alfred::wire
