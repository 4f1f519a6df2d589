#pragma once
// The key file of an authenticated mesh (--keyfile, issue 11): one 32-byte
// key per line, as 64 hex digits or base64 (standard or URL-safe, padded or
// not); `#` starts a comment; blank lines are ignored. The first key is the
// one a node sends with; every key is accepted on receipt, so a key is
// rotated in by adding it everywhere, then moving it to the top, then
// removing the old one.
//
// Refused, with a message that names the line but never echoes its bytes:
// a line that is not one key, the same key twice, no key, more than
// kMaxKeys, a file over kMaxKeyFileBytes, anything but a regular file, and
// a file that group or others may read or write.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/key.hpp"

namespace alfred::auth {

constexpr std::size_t kMaxKeys = 16;
constexpr std::size_t kMaxKeyFileBytes = 16384;

std::optional<std::vector<Key>> parse_key_file(std::string_view text, std::string& error);
std::optional<std::vector<Key>> load_key_file(const std::string& path, std::string& error);

}  // namespace alfred::auth
