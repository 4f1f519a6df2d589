#pragma once
// The alfred packet format: a 4-byte TLV header (type, version, big-endian
// length of what follows) and a type-specific body. The same bytes travel as
// UDP datagrams, on the unix socket and, back to back, on TCP streams.
#include <cstddef>
#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "wire/mac.hpp"

namespace alfred::wire {

constexpr std::uint16_t kPort = 0x4242;  // 16962
constexpr std::uint8_t kVersion = 0;
constexpr std::size_t kTlvSize = 4;
// A packet must fit one UDP datagram: 64 KiB minus the UDP header.
constexpr std::size_t kMaxPacket = 65535 - 8;
constexpr std::size_t kMaxTlvLength = kMaxPacket - kTlvSize;
constexpr std::size_t kTxMgmtSize = 4;
constexpr std::size_t kPushHeaderSize = kTlvSize + kTxMgmtSize;
constexpr std::size_t kDataHeaderSize = 6 + kTlvSize;
constexpr std::size_t kMaxRecordData = kMaxPacket - kPushHeaderSize - kDataHeaderSize;
// Largest UDP payload that crosses a 1280-byte MTU link without fragmenting.
constexpr std::size_t kUnfragmentedPayload = 1280 - 40 - 8;
constexpr std::size_t kIfNameSize = 16;                  // IFNAMSIZ
constexpr std::size_t kIfaceListSize = kIfNameSize * 16;  // change-interface body
constexpr unsigned kMinUserType = 64;                     // types below are reserved

enum class Type : std::uint8_t {
  PushData = 0,
  AnnouncePrimary = 1,
  Request = 2,
  StatusTxEnd = 3,
  StatusError = 4,
  ModeSwitch = 5,
  ChangeInterface = 6,
  ChangeBatIface = 7,
  ServerStatus = 8,
  EventRegister = 9,
  EventNotify = 10,
};
constexpr std::uint8_t kMaxType = 10;

enum class Mode : std::uint8_t { Secondary = 0, Primary = 1 };

// Sub-TLV types inside a server-status reply.
enum class StatusItem : std::uint8_t { OpMode = 0, NetIface = 1, BatIface = 2 };

// One data record as it appears inside a push packet. `data` points into the
// decoded buffer, so a view lives no longer than the bytes it was decoded from.
struct RecordView {
  Mac source{};
  std::uint8_t type = 0;
  std::uint8_t version = 0;
  std::span<const std::uint8_t> data;
};

struct PushData {
  std::uint16_t tx_id = 0;
  std::uint16_t seqno = 0;
  std::vector<RecordView> records;
};
struct AnnouncePrimary {};
struct Request {
  std::uint8_t requested_type = 0;
  std::uint16_t tx_id = 0;
};
// txend: seqno is the number of push packets of the transaction.
struct TxEnd {
  std::uint16_t tx_id = 0;
  std::uint16_t seqno = 0;
};
// Sent only on the unix socket. Upstream writes the error code in host byte
// order, so `code_raw` keeps the two bytes exactly as they are on the wire.
struct StatusError {
  std::uint16_t tx_id = 0;
  std::array<std::uint8_t, 2> code_raw{};
  // The error a failed request gets: code 1, in this host's byte order as
  // upstream writes it (clients read it in theirs).
  static StatusError failed(std::uint16_t tx_id) {
    StatusError e;
    e.tx_id = tx_id;
    const std::uint16_t code = 1;
    std::memcpy(e.code_raw.data(), &code, 2);
    return e;
  }
};
struct ModeSwitch {
  std::uint8_t mode = 0;
};
struct ChangeInterface {
  std::string interfaces;
};
struct ChangeBatIface {
  std::string bat_iface;
};
struct NetIfaceStatus {
  std::string name;
  bool active = false;
};
// An empty request (no items) or a reply.
struct ServerStatus {
  bool has_mode = false;
  std::uint8_t mode = 0;
  std::vector<NetIfaceStatus> interfaces;
  bool has_bat_iface = false;
  std::string bat_iface;
};
struct EventRegister {};
struct EventNotify {
  std::uint8_t type = 0;
  Mac source{};
};

using Packet = std::variant<PushData, AnnouncePrimary, Request, TxEnd, StatusError, ModeSwitch,
                            ChangeInterface, ChangeBatIface, ServerStatus, EventRegister,
                            EventNotify>;

struct DecodeResult {
  bool ok = false;
  Packet packet;
  std::string error;  // why it was rejected, for the log
  // Push data only: bytes at the end of the TLV body that do not form a whole
  // record (a cut record header, or a record whose length runs past the TLV,
  // and all that follows it). They are ignored, as upstream does; encoding
  // the packet again leaves them out. Non-zero tells callers and logs that
  // something was dropped.
  std::size_t ignored_bytes = 0;
};

// Reads the TLV header; false if fewer than 4 bytes.
struct TlvHeader {
  std::uint8_t type = 0;
  std::uint8_t version = 0;
  std::uint16_t length = 0;
};
bool read_tlv_header(std::span<const std::uint8_t> bytes, TlvHeader& out);

// Decodes one packet from the start of `bytes`. Bytes past the TLV's declared
// length are ignored (upstream accepts them too); anything shorter than the
// declared length, an unknown type, a wrong version or a body that does not
// match its type is rejected with a reason. Push data is the lenient
// exception, like upstream: only a body shorter than the transaction header
// is rejected; the records before the first one that does not fit are kept
// and the rest is counted in DecodeResult::ignored_bytes.
DecodeResult decode(std::span<const std::uint8_t> bytes);

// Encoders append to `out` and return the number of bytes written.
std::size_t encode_push_header(std::vector<std::uint8_t>& out, std::uint16_t tx_id,
                               std::uint16_t seqno);
void append_record(std::vector<std::uint8_t>& out, const Mac& source, std::uint8_t type,
                   std::uint8_t version, std::span<const std::uint8_t> data);
// Fixes the TLV length of a packet that starts at `offset` and runs to out.end().
void finish_tlv(std::vector<std::uint8_t>& out, std::size_t offset);

std::vector<std::uint8_t> encode(const Packet& packet);

// EUI-64 link-local helpers (fe80::xxxx:xxff:fexx:xxxx).
using Ipv6Bytes = std::array<std::uint8_t, 16>;
Ipv6Bytes mac_to_link_local(const Mac& mac);
bool is_eui64_link_local(const Ipv6Bytes& addr);
// The MAC an EUI-64 link-local address was made from; nullopt if the address
// is not one or the MAC is not a valid unicast address.
std::optional<Mac> link_local_to_mac(const Ipv6Bytes& addr);

std::string_view type_name(std::uint8_t type);

}  // namespace alfred::wire
