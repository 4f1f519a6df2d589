// The parsers and checks of authenticated meshes (src/auth) against
// arbitrary input.
//
// Input layout: byte 0 % 4 picks what the rest is:
//   0  a key file's text. Checked: parsing is deterministic; what it takes
//      holds 1..kMaxKeys distinct keys; an error never echoes the file's
//      bytes (any 8-byte run of a refused line).
//   1  a datagram from the link, opened with a fixed keyring. Checked: it
//      never opens (that would be a forgery), and the cheap checks decide
//      before the crypto (the reason matches the datagram's form).
//   2  bytes 1-8 a counter, byte 9 a position, the rest a packet: sealed,
//      it opens to the same packet and counter; at another destination,
//      or with the byte at the position changed, it does not open.
//   3  (sender, counter) pairs, 1 + 2 bytes each, fed to a replay window
//      of 4 senders. Checked against a plainly written model: the same
//      verdict for each.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <string_view>

#include "auth/key_file.hpp"
#include "auth/replay_window.hpp"
#include "auth/sealed_datagram.hpp"
#include "fuzz_support.hpp"

using namespace alfred::auth;

namespace {

const Keyring& fixed_ring() {
  static const Keyring ring = [] {
    std::string error;
    auto keys = parse_key_file(
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"
        "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf\n",
        error);
    FUZZ_CHECK(keys);
    return Keyring(std::move(*keys));
  }();
  return ring;
}

void key_file(std::string_view text) {
  std::string e1, e2;
  auto a = parse_key_file(text, e1);
  auto b = parse_key_file(text, e2);
  FUZZ_CHECK(a.has_value() == b.has_value());
  if (a) {
    FUZZ_CHECK(!a->empty() && a->size() <= kMaxKeys && a->size() == b->size());
    for (std::size_t i = 0; i < a->size(); ++i) {
      FUZZ_CHECK((*a)[i] == (*b)[i]);
      for (std::size_t j = 0; j < i; ++j) FUZZ_CHECK(!((*a)[i] == (*a)[j]));
    }
    Keyring ring(std::move(*a));
    FUZZ_CHECK(ring.find(ring.sending().key.id()) != nullptr);
    return;
  }
  FUZZ_CHECK(e1 == e2 && !e1.empty());
  // No run of 8 bytes of the file that is a key's worth of digits appears in
  // the message: line numbers and the fixed wording are all it says.
  for (std::size_t i = 0; i + 8 <= text.size(); ++i) {
    std::string_view run = text.substr(i, 8);
    bool keyish = true;
    for (char c : run)
      keyish = keyish && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'Z') ||
                          c == '+' || c == '/' || c == '-' || c == '_');
    // Wording of the messages ("regular", "others") is lowercase words; a
    // run that mixes digits and letters is key-like.
    bool digits = false, letters = false;
    for (char c : run) {
      digits = digits || (c >= '0' && c <= '9');
      letters = letters || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    }
    if (keyish && digits && letters) FUZZ_CHECK(e1.find(run) == std::string::npos);
  }
}

void datagram(const std::uint8_t* data, std::size_t size) {
  std::span<const std::uint8_t> d(data, size);
  // Sent from the MAC it names (when it is long enough to name one), so
  // that the checks past the MAC's are reached too.
  alfred::Mac from{};
  if (size >= 14) std::copy(data + 8, data + 14, from.begin());
  const Destination to{0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xfe, 0, 0, 2};
  OpenError why{};
  FUZZ_CHECK(!open(fixed_ring(), d, from, to, why));
  if (!looks_sealed(d)) {
    FUZZ_CHECK(why == OpenError::NotSealed);
  } else if (size < kSealedOverhead) {
    FUZZ_CHECK(why == OpenError::Truncated);
  } else if (((std::size_t{data[2]} << 8) | data[3]) != size - 4) {
    FUZZ_CHECK(why == OpenError::BadLength);
  } else {
    FUZZ_CHECK(why == OpenError::UnknownKey || why == OpenError::BadTag);
  }
}

void round_trip(const std::uint8_t* data, std::size_t size) {
  if (size < 9) return;
  std::uint64_t counter = 0;
  for (int i = 0; i < 8; ++i) counter = (counter << 8) | data[i];
  std::size_t at = data[8];
  std::span<const std::uint8_t> packet(data + 9, size - 9);
  const alfred::Mac from{2, 0, 0, 0, 0, 1};
  // The destination from the counter's last byte: another one never opens it.
  Destination to{0xfe, 0x80};
  to[15] = data[7];
  auto sealed = seal(fixed_ring(), counter, from, to, packet);
  FUZZ_CHECK(sealed.size() == packet.size() + kSealedOverhead);
  OpenError why{};
  auto o = open(fixed_ring(), sealed, from, to, why);
  FUZZ_CHECK(o && o->counter == counter &&
             std::equal(o->packet.begin(), o->packet.end(), packet.begin(), packet.end()));
  Destination elsewhere = to;
  elsewhere[15] ^= 1;
  FUZZ_CHECK(!open(fixed_ring(), sealed, from, elsewhere, why) && why == OpenError::BadTag);
  sealed[at % sealed.size()] ^= 0x80;
  FUZZ_CHECK(!open(fixed_ring(), sealed, from, to, why));
}

void replay(const std::uint8_t* data, std::size_t size) {
  ReplayWindow w(4);
  // The model: per sender, the highest counter and the set taken; at the
  // cap, the least recently heard (by a Fresh verdict) goes.
  struct Model {
    std::uint64_t highest;
    std::set<std::uint64_t> taken;
    std::uint64_t heard;
  };
  std::map<std::uint8_t, Model> m;
  std::uint64_t tick = 0;
  for (std::size_t i = 0; i + 3 <= size; i += 3) {
    std::uint8_t who = data[i] % 8;
    std::uint64_t c = (std::uint64_t{data[i + 1]} << 8) | data[i + 2];
    ReplayWindow::Sender s{};
    s[0] = who;
    ++tick;
    ReplayWindow::Verdict want;
    auto it = m.find(who);
    if (it == m.end()) {
      if (m.size() >= 4) {
        auto oldest = m.begin();
        for (auto j = m.begin(); j != m.end(); ++j)
          if (j->second.heard < oldest->second.heard) oldest = j;
        m.erase(oldest);
      }
      m[who] = Model{c, {c}, tick};
      want = ReplayWindow::Verdict::Fresh;
    } else if (c + ReplayWindow::kWindow <= it->second.highest) {
      want = ReplayWindow::Verdict::TooOld;
    } else if (it->second.taken.count(c)) {
      want = ReplayWindow::Verdict::Replayed;
    } else {
      it->second.taken.insert(c);
      it->second.highest = std::max(it->second.highest, c);
      it->second.heard = tick;
      want = ReplayWindow::Verdict::Fresh;
    }
    FUZZ_CHECK(w.admit(s, c) == want);
    FUZZ_CHECK(w.senders() == m.size());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t* rest = data + 1;
  std::size_t n = size - 1;
  switch (data[0] % 4) {
    case 0: key_file(std::string_view(reinterpret_cast<const char*>(rest), n)); break;
    case 1: datagram(rest, n); break;
    case 2: round_trip(rest, n); break;
    case 3: replay(rest, n); break;
  }
  return 0;
}
