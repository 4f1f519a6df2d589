#include "store/record_digest.hpp"

namespace alfred {
namespace {

constexpr std::uint64_t kOffset = 0xcbf29ce484222325ull;
constexpr std::uint64_t kPrime = 0x100000001b3ull;

void mix(std::uint64_t& h, std::uint8_t b) {
  h ^= b;
  h *= kPrime;
}

}  // namespace

std::uint64_t record_digest(const Record& r) {
  std::uint64_t h = kOffset;
  mix(h, r.type);
  for (auto b : r.source) mix(h, b);
  mix(h, r.version);
  mix(h, static_cast<std::uint8_t>(r.data.size() >> 8));
  mix(h, static_cast<std::uint8_t>(r.data.size() & 0xff));
  for (auto b : r.data) mix(h, b);
  // 0 means "not computed" in Record::digest.
  return h ? h : 1;
}

}  // namespace alfred
