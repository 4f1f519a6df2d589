// The key file of an authenticated mesh: what it takes, and every refusal.
#include "auth/key_file.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

namespace alfred::auth {
namespace {

const std::string kHexA = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
// The same 32 bytes in base64, padded and not, standard and URL-safe.
const std::string kB64A = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const std::string kHexB = "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
// 0xfb 0xff ... : '+' and '/' in standard base64, '-' and '_' URL-safe.
const std::string kB64C = "+/8AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
const std::string kB64CUrl = "-_8AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

std::vector<Key> parse_ok(const std::string& text) {
  std::string error;
  auto keys = parse_key_file(text, error);
  EXPECT_TRUE(keys) << error;
  return keys ? std::move(*keys) : std::vector<Key>{};
}

std::string refusal(const std::string& text) {
  std::string error;
  auto keys = parse_key_file(text, error);
  EXPECT_FALSE(keys) << text;
  EXPECT_FALSE(error.empty());
  return error;
}

TEST(KeyFile, TakesHexAndEveryBase64FormWithCommentsAndBlankLines) {
  auto keys = parse_ok("# mesh keys, newest first\n\n  " + kHexB + "  # sending\r\n" + kB64C +
                       "\n\t# old\n" + kHexA + "\n");
  ASSERT_EQ(keys.size(), 3u);
  EXPECT_EQ(keys[0], parse_ok(kHexB)[0]);
  EXPECT_EQ(keys[2], parse_ok(kB64A)[0]);
  EXPECT_EQ(keys[2], parse_ok(kB64A.substr(0, 43))[0]);  // no padding
  EXPECT_EQ(keys[1], parse_ok(kB64CUrl)[0]);               // URL-safe
  EXPECT_FALSE(keys[0] == keys[2]);
  EXPECT_NE(keys[0].id(), keys[2].id());
}

TEST(KeyFile, TheSameKeyHasTheSameIdAndSubkeysEverywhere) {
  auto a = parse_ok(kHexA)[0];
  auto b = parse_ok(kB64A)[0];
  EXPECT_EQ(a.id(), b.id());
  EXPECT_EQ(a.derive(1), b.derive(1));
  EXPECT_FALSE(a.derive(1) == a.derive(2));
  EXPECT_FALSE(a.derive(1) == a);
}

TEST(KeyFile, RefusesWhatIsNotOneKeyPerLineAndNamesTheLineNotItsBytes) {
  auto e = refusal("# ok\n" + kHexA + "\nnot-a-key\n");
  EXPECT_NE(e.find("line 3"), std::string::npos) << e;
  EXPECT_EQ(e.find("not-a-key"), std::string::npos) << "echoed the line: " << e;
  e = refusal(kHexA.substr(0, 62) + "\n");  // 31 bytes
  EXPECT_NE(e.find("line 1"), std::string::npos) << e;
  EXPECT_EQ(e.find(kHexA.substr(0, 62)), std::string::npos) << e;
  refusal(kHexA + "00\n");                        // 33 bytes
  refusal("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gIQ==\n");  // 34 bytes of base64
  refusal(kHexA.substr(0, 63) + "g\n");           // not hex, not base64 of 32
  e = refusal(kHexA + " " + kHexB + "\n");
  EXPECT_NE(e.find("one key per line"), std::string::npos) << e;
}

TEST(KeyFile, RefusesTheSameKeyTwiceNoKeyAndTooManyKeys) {
  auto e = refusal(kHexA + "\n" + kHexB + "\n" + kB64A + "\n");
  EXPECT_NE(e.find("line 3: the same key as line 1"), std::string::npos) << e;
  e = refusal("# nothing yet\n\n");
  EXPECT_NE(e.find("no key"), std::string::npos) << e;
  refusal("");
  std::string many;
  for (std::size_t i = 0; i <= kMaxKeys; ++i) {
    char line[80];
    std::snprintf(line, sizeof line, "%02zx%s\n", i, kHexA.substr(2).c_str());
    many += line;
  }
  e = refusal(many);
  EXPECT_NE(e.find("more than 16 keys"), std::string::npos) << e;
  std::string huge = kHexA + "\n" + std::string(kMaxKeyFileBytes, '#');
  e = refusal(huge);
  EXPECT_NE(e.find("larger than"), std::string::npos) << e;
}

class KeyFileOnDisk : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/alfred-keyfile-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/keys";
  }
  void TearDown() override {
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
  }
  void write(const std::string& text, mode_t mode) {
    std::ofstream(path_) << text;
    ASSERT_EQ(::chmod(path_.c_str(), mode), 0);
  }
  std::string dir_, path_;
};

TEST_F(KeyFileOnDisk, LoadsAFileOnlyItsOwnerMayRead) {
  write(kHexA + "\n", 0600);
  std::string error;
  auto keys = load_key_file(path_, error);
  ASSERT_TRUE(keys) << error;
  EXPECT_EQ(keys->size(), 1u);
  write(kHexA + "\n", 0400);
  EXPECT_TRUE(load_key_file(path_, error)) << error;
}

TEST_F(KeyFileOnDisk, RefusesAFileGroupOrOthersMayAccess) {
  for (mode_t mode : {0644, 0640, 0604, 0620, 0602, 0610}) {
    write(kHexA + "\n", mode);
    std::string error;
    EXPECT_FALSE(load_key_file(path_, error)) << std::oct << mode;
    EXPECT_NE(error.find("chmod 600"), std::string::npos) << error;
    EXPECT_NE(error.find(path_), std::string::npos) << error;
  }
}

TEST_F(KeyFileOnDisk, RefusesAMissingFileADirectoryAndAMalformedOne) {
  std::string error;
  EXPECT_FALSE(load_key_file(path_, error));
  EXPECT_NE(error.find("No such file"), std::string::npos) << error;
  EXPECT_FALSE(load_key_file(dir_, error));
  EXPECT_NE(error.find("not a regular file"), std::string::npos) << error;
  write("junk\n", 0600);
  EXPECT_FALSE(load_key_file(path_, error));
  EXPECT_NE(error.find(path_ + ": line 1"), std::string::npos) << error;
  write(kHexA + "\n" + std::string(kMaxKeyFileBytes, '#'), 0600);
  EXPECT_FALSE(load_key_file(path_, error));
  EXPECT_NE(error.find("larger than"), std::string::npos) << error;
}

}  // namespace
}  // namespace alfred::auth
