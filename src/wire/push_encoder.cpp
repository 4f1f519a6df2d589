#include "wire/push_encoder.hpp"

#include <algorithm>

namespace alfred::wire {

PushEncoder::PushEncoder(Snapshot records, std::uint16_t tx_id, bool always_txend,
                         std::size_t max_packet)
    : PushEncoder(std::make_shared<const Snapshot>(std::move(records)), tx_id, always_txend,
                  max_packet, 0) {}

PushEncoder PushEncoder::shared(std::shared_ptr<const Snapshot> records, std::uint16_t tx_id,
                                bool always_txend, std::size_t max_packet) {
  return PushEncoder(std::move(records), tx_id, always_txend, max_packet, 0);
}

PushEncoder::PushEncoder(std::shared_ptr<const Snapshot> records, std::uint16_t tx_id,
                         bool always_txend, std::size_t max_packet, int)
    : records_(std::move(records)),
      tx_id_(tx_id),
      always_txend_(always_txend),
      max_packet_(std::min(max_packet, kMaxPacket)) {}

namespace {
bool fits_alone(const Record& r, std::size_t max_packet) {
  return kPushHeaderSize + kDataHeaderSize + r.data.size() <= max_packet;
}
}  // namespace

bool PushEncoder::next(std::vector<std::uint8_t>& out) {
  out.clear();
  if (done_) return false;
  // Records too large for any packet cannot be sent; the store never holds
  // one (set and receive paths cap the size), but a snapshot is just a list.
  const Snapshot& records = *records_;
  while (index_ < records.size() && !fits_alone(*records[index_], max_packet_)) ++index_;
  if (index_ < records.size()) {
    encode_push_header(out, tx_id_, seqno_);
    while (index_ < records.size()) {
      const Record& r = *records[index_];
      if (!fits_alone(r, max_packet_)) {
        ++index_;
        continue;
      }
      if (out.size() + kDataHeaderSize + r.data.size() > max_packet_) break;
      append_record(out, r.source, r.type, r.version, r.data);
      ++index_;
    }
    finish_tlv(out, 0);
    ++seqno_;
    return true;
  }
  done_ = true;
  if (seqno_ == 0 && !always_txend_) return false;
  out = encode(TxEnd{tx_id_, seqno_});
  return true;
}

std::size_t PushEncoder::encoded_size(const Snapshot& records, bool always_txend,
                                      std::size_t max_packet) {
  std::size_t total = 0, packet = 0, packets = 0;
  for (const auto& r : records) {
    if (!fits_alone(*r, max_packet)) continue;
    std::size_t add = kDataHeaderSize + r->data.size();
    if (packet == 0 || packet + add > max_packet) {
      total += packet;
      packet = kPushHeaderSize;
      ++packets;
    }
    packet += add;
  }
  total += packet;
  if (packets > 0 || always_txend) total += kTlvSize + kTxMgmtSize;
  return total;
}

}  // namespace alfred::wire
