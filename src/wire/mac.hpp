#pragma once
// A link-layer (Ethernet) address, the identity of a node in alfred.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace alfred {

using Mac = std::array<std::uint8_t, 6>;

// Unicast and not all-zero: the only addresses alfred accepts as a data source.
bool is_valid_unicast(const Mac& mac);

// "aa:bb:cc:dd:ee:ff", lower case, as alfred prints it.
std::string to_string(const Mac& mac);

// Parses "aa:bb:cc:dd:ee:ff"; nullopt on anything else.
std::optional<Mac> parse_mac(std::string_view text);

}  // namespace alfred
