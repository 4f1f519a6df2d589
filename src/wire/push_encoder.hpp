#pragma once
// Turns a snapshot of records into the packets of one transaction: push-data
// packets of at most kMaxPacket bytes, numbered from 0, then a txend carrying
// their count. Packets are produced one at a time on demand, so a sender holds
// one packet however large the snapshot is (the records themselves are shared).
#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "store/record.hpp"
#include "wire/packet.hpp"

namespace alfred::wire {

class PushEncoder {
 public:
  // `max_packet` is capped at kMaxPacket: lengths on the wire are 16 bits.
  // `always_txend`: send a txend even for an empty snapshot (a reply to a
  // request must always be closed; a periodic sync of nothing sends nothing).
  PushEncoder(Snapshot records, std::uint16_t tx_id, bool always_txend,
              std::size_t max_packet = kMaxPacket);
  // Several transactions (one per peer) may share one snapshot.
  static PushEncoder shared(std::shared_ptr<const Snapshot> records, std::uint16_t tx_id,
                            bool always_txend, std::size_t max_packet = kMaxPacket);

  // Replaces `out` with the next packet; false when the transaction is done.
  bool next(std::vector<std::uint8_t>& out);

  // Bytes all packets of this transaction take together (for choosing a transport).
  static std::size_t encoded_size(const Snapshot& records, bool always_txend,
                                  std::size_t max_packet = kMaxPacket);

  std::uint16_t tx_id() const { return tx_id_; }
  std::uint16_t packets_sent() const { return seqno_; }
  std::size_t record_count() const { return records_->size(); }
  const std::shared_ptr<const Snapshot>& records() const { return records_; }
  // Bytes of the whole transaction, as encoded_size() counts them.
  std::size_t total_size() const { return encoded_size(*records_, always_txend_, max_packet_); }
  // The same transaction in packets of at most `max_packet` (what still fits
  // once sealed), from its first packet.
  PushEncoder limited_to(std::size_t max_packet) const {
    return shared(records_, tx_id_, always_txend_, std::min(max_packet, max_packet_));
  }
  // The same transaction from its first packet again (for a retry on another transport).
  PushEncoder restarted() const { return shared(records_, tx_id_, always_txend_, max_packet_); }

 private:
  PushEncoder(std::shared_ptr<const Snapshot> records, std::uint16_t tx_id, bool always_txend,
              std::size_t max_packet, int);
  std::shared_ptr<const Snapshot> records_;
  std::size_t index_ = 0;
  std::uint16_t tx_id_;
  std::uint16_t seqno_ = 0;
  bool always_txend_;
  bool done_ = false;
  std::size_t max_packet_;
};

}  // namespace alfred::wire
