#include "auth/key_file.hpp"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

namespace alfred::auth {

namespace {

bool blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

// Decodes one word into exactly kKeyBytes, or returns false.
bool decode(std::string_view word, std::array<std::uint8_t, kKeyBytes>& out) {
  std::size_t len = 0;
  const char* end = nullptr;
  if (word.size() == 2 * kKeyBytes &&
      sodium_hex2bin(out.data(), out.size(), word.data(), word.size(), nullptr, &len, &end) == 0 &&
      len == kKeyBytes && end == word.data() + word.size())
    return true;
  for (int variant : {sodium_base64_VARIANT_ORIGINAL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
                      sodium_base64_VARIANT_URLSAFE, sodium_base64_VARIANT_URLSAFE_NO_PADDING}) {
    if (sodium_base642bin(out.data(), out.size(), word.data(), word.size(), nullptr, &len, &end,
                          variant) == 0 &&
        len == kKeyBytes && end == word.data() + word.size())
      return true;
  }
  sodium_memzero(out.data(), out.size());
  return false;
}

}  // namespace

std::optional<std::vector<Key>> parse_key_file(std::string_view text, std::string& error) {
  if (!crypto_ready()) {
    error = "libsodium can't be initialised";
    return std::nullopt;
  }
  if (text.size() > kMaxKeyFileBytes) {
    error = "larger than " + std::to_string(kMaxKeyFileBytes) + " bytes";
    return std::nullopt;
  }
  std::vector<Key> keys;
  std::vector<std::size_t> key_lines;
  std::size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    while (!line.empty() && blank(line.front())) line.remove_prefix(1);
    while (!line.empty() && blank(line.back())) line.remove_suffix(1);
    if (line.empty()) continue;
    auto where = "line " + std::to_string(line_no) + ": ";
    for (char c : line) {
      if (blank(c)) {
        error = where + "more than one word (one key per line)";
        return std::nullopt;
      }
    }
    std::array<std::uint8_t, kKeyBytes> bytes{};
    if (!decode(line, bytes)) {
      error = where + "not a 32-byte key (64 hex digits, or base64 of 32 bytes)";
      return std::nullopt;
    }
    Key key{std::span<const std::uint8_t, kKeyBytes>(bytes)};
    sodium_memzero(bytes.data(), bytes.size());
    for (std::size_t i = 0; i < keys.size(); ++i) {
      if (keys[i] == key) {
        error = where + "the same key as line " + std::to_string(key_lines[i]);
        return std::nullopt;
      }
    }
    if (keys.size() == kMaxKeys) {
      error = where + "more than " + std::to_string(kMaxKeys) + " keys";
      return std::nullopt;
    }
    keys.push_back(std::move(key));
    key_lines.push_back(line_no);
  }
  if (keys.empty()) {
    error = "no key in it";
    return std::nullopt;
  }
  return keys;
}

std::optional<std::vector<Key>> load_key_file(const std::string& path, std::string& error) {
  auto fail = [&](std::string why) {
    error = path + ": " + std::move(why);
    return std::nullopt;
  };
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return fail(std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) return fail(std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return fail("not a regular file");
  if (st.st_mode & (S_IRWXG | S_IRWXO)) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return fail(std::string("group or others may access it (mode ") + mode +
                "); keys must be readable by their owner only: chmod 600");
  }
  if (static_cast<std::size_t>(st.st_size) > kMaxKeyFileBytes)
    return fail("larger than " + std::to_string(kMaxKeyFileBytes) + " bytes");
  // One byte more than allowed, so a file that grew since fstat is caught.
  std::vector<char> buf(kMaxKeyFileBytes + 1);
  std::size_t got = 0;
  while (got < buf.size()) {
    ssize_t n = ::read(fd, buf.data() + got, buf.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      sodium_memzero(buf.data(), buf.size());
      return fail(std::strerror(errno));
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  std::string why;
  auto keys = parse_key_file(std::string_view(buf.data(), got), why);
  sodium_memzero(buf.data(), buf.size());
  if (!keys) return fail(why);
  return keys;
}

}  // namespace alfred::auth
