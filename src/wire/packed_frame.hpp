#pragma once
// Compression on sessions. Where both hellos carry the packed flag, the
// opener may send a push-data packet deflated (zlib's format, checksum
// included) as a packed frame: type 0xcd, the usual TLV header, the deflated
// packet as its body. The acceptor inflates it and takes the packet as if it
// had come as is, so acknowledgements, transactions and the engine are the
// same either way. The acceptor never packs; nor does anyone else.
//
// Bounded: a packed frame inflates to one packet at most (kMaxPacket), and
// to at most kMaxPackRatio times its own size, so that a small frame cannot
// cost the acceptor a whole packet of inflating and parsing (a decompression
// bomb). A frame that breaks either bound, does not inflate, has bytes after
// its deflate stream, or is not one whole push-data packet closes the
// session; the transport logs why.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace alfred::wire {

// Smaller packets are not worth a deflate: a change of one short record.
constexpr std::size_t kMinPackable = 256;
// Node data (JSON) deflates 3-10x; padding and repeats more. A packet that
// would deflate past this goes as is: the acceptor takes no more.
constexpr std::size_t kMaxPackRatio = 32;

enum class PackResult {
  Packed,         // `out` holds the packed frame
  TooSmall,       // under kMinPackable
  Precompressed,  // most of its record data is compressed already (gzip, ...)
  NoGain,         // deflated, it would not be at least an eighth smaller
  TooDense,       // it would deflate past kMaxPackRatio
  NotPushData,
};
std::string_view to_string(PackResult r);

// Packs `packet` (a whole push-data packet) into `out`. Anything but
// Packed leaves `out` as it was, and the packet goes as is.
PackResult pack(std::span<const std::uint8_t> packet, std::vector<std::uint8_t>& out);

// Inflates the body of a packed frame into `packet`. False, with `error`
// saying why, when the frame breaks a bound or is not one push-data packet.
bool unpack(std::span<const std::uint8_t> body, std::vector<std::uint8_t>& packet, std::string& error);

// Whether most of the record data in a push-data packet is compressed
// already (gzip, zlib, zstd or xz at its start): deflating it again costs
// CPU and saves nothing. Producers often gzip their JSON before alfred -s.
bool mostly_precompressed(std::span<const std::uint8_t> push_packet);

}  // namespace alfred::wire
