#include "sys/privileges.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <string>

namespace alfred::sys {
namespace {

constexpr uid_t kNobody = 65534;
constexpr const char* kSkip = "skip: ";

// Capability and uid changes are process state that would leak into every
// later test of the binary; each scenario therefore runs in a forked child
// that reports "" on success, "skip: why" or a failure description.
std::string in_child(const std::function<std::string()>& body) {
  int fds[2];
  if (pipe(fds) != 0) return std::string("pipe: ") + std::strerror(errno);
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) return std::string("fork: ") + std::strerror(errno);
  if (pid == 0) {
    close(fds[0]);
    const std::string result = body();
    std::size_t off = 0;
    while (off < result.size()) {
      const ssize_t n = write(fds[1], result.data() + off, result.size() - off);
      if (n <= 0) break;
      off += static_cast<std::size_t>(n);
    }
    _exit(0);  // skip gtest's and the C++ runtime's exit handlers
  }
  close(fds[1]);
  std::string out;
  char buf[256];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return "child died, status " + std::to_string(status) + " " + out;
  return out;
}

#define RUN_IN_CHILD(...)                                \
  do {                                                   \
    const std::string result_ = in_child(__VA_ARGS__);   \
    if (result_.rfind(kSkip, 0) == 0) {                  \
      GTEST_FAIL() << result_.substr(std::strlen(kSkip)); \
    }                                                    \
    EXPECT_EQ(result_, "");                              \
  } while (0)

bool has(cap_value_t cap, cap_flag_t set) {
  cap_t caps = cap_get_proc();
  if (caps == nullptr) return false;
  cap_flag_value_t v = CAP_CLEAR;
  const bool ok = cap_get_flag(caps, cap, set, &v) == 0 && v == CAP_SET;
  cap_free(caps);
  return ok;
}

std::string current_caps() {
  cap_t caps = cap_get_proc();
  if (caps == nullptr) return "?";
  char* text = cap_to_text(caps, nullptr);
  std::string s = text ? text : "?";
  cap_free(text);
  cap_free(caps);
  return s;
}

// "" when exactly `expected` are set in `set`.
std::string expect_exactly(cap_flag_t set, std::initializer_list<cap_value_t> expected) {
  for (cap_value_t cap = 0; cap <= CAP_LAST_CAP; ++cap) {
    bool want = false;
    for (cap_value_t e : expected) want |= (e == cap);
    if (has(cap, set) != want)
      return "capability " + std::to_string(cap) + " in set " + std::to_string(set) +
             (want ? " missing" : " unexpected") + "; now: " + current_caps();
  }
  return "";
}

bool privileged_enough() {
  return has(CAP_NET_RAW, CAP_PERMITTED) && has(CAP_NET_ADMIN, CAP_PERMITTED) &&
         has(CAP_SETUID, CAP_EFFECTIVE) && has(CAP_SETGID, CAP_EFFECTIVE);
}

TEST(Privileges, ReduceKeepsOnlyNetworkCapabilities) {
  if (!privileged_enough()) GTEST_FAIL() << "needs root-like capabilities";
  RUN_IN_CHILD([] {
    if (!reduce_capabilities()) return std::string("reduce_capabilities failed");
    if (auto e = expect_exactly(CAP_PERMITTED, {CAP_NET_RAW, CAP_NET_ADMIN}); !e.empty()) return e;
    if (auto e = expect_exactly(CAP_EFFECTIVE, {}); !e.empty()) return e;
    if (auto e = expect_exactly(CAP_INHERITABLE, {}); !e.empty()) return e;
    if (getuid() != 0 || geteuid() != 0) return std::string("root lost its uid");
    // Idempotent: the daemon may be restarted in-process by tests.
    if (!reduce_capabilities()) return std::string("second reduce_capabilities failed");
    return expect_exactly(CAP_PERMITTED, {CAP_NET_RAW, CAP_NET_ADMIN});
  });
}

TEST(Privileges, RaiseGuardIsScoped) {
  if (!privileged_enough()) GTEST_FAIL() << "needs root-like capabilities";
  RUN_IN_CHILD([] {
    if (!reduce_capabilities()) return std::string("reduce_capabilities failed");
    {
      CapabilityRaise raw(CAP_NET_RAW);
      if (!raw.active()) return std::string("CAP_NET_RAW not raised");
      if (auto e = expect_exactly(CAP_EFFECTIVE, {CAP_NET_RAW}); !e.empty()) return e;
      {
        CapabilityRaise admin(CAP_NET_ADMIN);
        CapabilityRaise raw_again(CAP_NET_RAW);  // nested, already effective
        if (!admin.active() || !raw_again.active()) return std::string("nested raise failed");
        if (auto e = expect_exactly(CAP_EFFECTIVE, {CAP_NET_RAW, CAP_NET_ADMIN}); !e.empty())
          return e;
      }
      // The inner guard for CAP_NET_RAW must not have lowered the outer one.
      if (auto e = expect_exactly(CAP_EFFECTIVE, {CAP_NET_RAW}); !e.empty()) return e;
    }
    if (auto e = expect_exactly(CAP_EFFECTIVE, {}); !e.empty()) return e;
    return expect_exactly(CAP_PERMITTED, {CAP_NET_RAW, CAP_NET_ADMIN});
  });
}

TEST(Privileges, RaiseOfDroppedCapabilityIsHarmless) {
  if (!privileged_enough()) GTEST_FAIL() << "needs root-like capabilities";
  RUN_IN_CHILD([] {
    if (!reduce_capabilities()) return std::string("reduce_capabilities failed");
    {
      CapabilityRaise sysadmin(CAP_SYS_ADMIN);
      if (sysadmin.active()) return std::string("raised a capability that was dropped");
      if (auto e = expect_exactly(CAP_EFFECTIVE, {}); !e.empty()) return e;
    }
    return expect_exactly(CAP_PERMITTED, {CAP_NET_RAW, CAP_NET_ADMIN});
  });
}

TEST(Privileges, RaiseWithoutReduceLeavesEffectiveSetAlone) {
  RUN_IN_CHILD([] {
    const bool before = has(CAP_NET_ADMIN, CAP_EFFECTIVE);
    { CapabilityRaise admin(CAP_NET_ADMIN); }
    if (has(CAP_NET_ADMIN, CAP_EFFECTIVE) != before)
      return std::string("guard changed a capability it did not raise");
    return std::string();
  });
}

TEST(Privileges, UnprivilegedUserIsNotAnError) {
  if (!privileged_enough()) GTEST_FAIL() << "needs root to become nobody";
  RUN_IN_CHILD([] {
    if (setgroups(0, nullptr) != 0 || setresgid(kNobody, kNobody, kNobody) != 0 ||
        setresuid(kNobody, kNobody, kNobody) != 0)
      return std::string("cannot become nobody");
    if (!reduce_capabilities()) return std::string("reduce_capabilities failed for a plain user");
    if (auto e = expect_exactly(CAP_PERMITTED, {}); !e.empty()) return e;
    CapabilityRaise raw(CAP_NET_RAW);
    return raw.active() ? std::string("raised without permission") : std::string();
  });
}

// A setuid-root binary started by "nobody": real ids are nobody's, effective
// and saved uid are root. (The gid is set-group-ID here as well to cover that
// path.)
TEST(Privileges, SetuidRootDropsToRealUidAndKeepsNetworkCapabilities) {
  if (!privileged_enough()) GTEST_FAIL() << "needs root to simulate a setuid install";
  RUN_IN_CHILD([] {
    if (setgroups(0, nullptr) != 0 || setresgid(kNobody, 0, 0) != 0 ||
        setresuid(kNobody, 0, 0) != 0)
      return std::string("cannot simulate setuid-root");
    if (!reduce_capabilities()) return std::string("reduce_capabilities failed");

    uid_t r, e, s;
    gid_t rg, eg, sg;
    getresuid(&r, &e, &s);
    getresgid(&rg, &eg, &sg);
    if (r != kNobody || e != kNobody || s != kNobody) return std::string("uids not dropped");
    if (rg != kNobody || eg != kNobody || sg != kNobody) return std::string("gids not dropped");
    if (auto err = expect_exactly(CAP_PERMITTED, {CAP_NET_RAW, CAP_NET_ADMIN}); !err.empty())
      return err;
    if (auto err = expect_exactly(CAP_EFFECTIVE, {}); !err.empty()) return err;
    if (setuid(0) == 0 || seteuid(0) == 0) return std::string("root could be regained");
    CapabilityRaise admin(CAP_NET_ADMIN);
    if (!admin.active()) return std::string("CAP_NET_ADMIN not usable as nobody");
    return std::string();
  });
}

// --- what the daemon does after reduce_capabilities(), as root --------------

std::string errno_text(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

std::string bind_unix(const std::string& path) {
  const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0) return errno_text("unix socket");
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path.c_str());
  std::string err;
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
    err = errno_text(("bind " + path).c_str());
  else if (listen(fd, 4) != 0)
    err = errno_text("listen unix");
  else if (chmod(path.c_str(), 0666) != 0)
    err = errno_text("chmod unix socket");
  close(fd);
  // A stale socket of an earlier (root) run must be removable, too.
  if (err.empty() && unlink(path.c_str()) != 0) err = errno_text(("unlink " + path).c_str());
  return err;
}

TEST(Privileges, RootDaemonStillWorksAfterReduce) {
  if (!privileged_enough() || getuid() != 0) GTEST_FAIL() << "needs root";
  RUN_IN_CHILD([]() -> std::string {
    // A private network namespace: no clash with a running alfred on 16962.
    if (unshare(CLONE_NEWNET) != 0) return std::string(kSkip) + errno_text("unshare");
    {
      const int fd = socket(AF_INET, SOCK_DGRAM, 0);
      ifreq ifr{};
      std::snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
      ifr.ifr_flags = IFF_UP;
      const bool up = fd >= 0 && ioctl(fd, SIOCSIFFLAGS, &ifr) == 0;
      if (fd >= 0) close(fd);
      if (!up) return errno_text("bring lo up");
    }
    // A stale root-owned socket file as left behind by a crashed daemon.
    const std::string stale = "/tmp/alfred-privtest-" + std::to_string(getpid()) + ".sock";
    {
      const int f = open(stale.c_str(), O_CREAT | O_WRONLY, 0600);
      if (f < 0) return errno_text("create stale file");
      close(f);
    }

    if (!reduce_capabilities()) return std::string("reduce_capabilities failed");

    if (unlink(stale.c_str()) != 0) return errno_text("unlink stale socket");

    const int udp = socket(AF_INET6, SOCK_DGRAM, 0);
    if (udp < 0) return errno_text("udp socket");
    {
      CapabilityRaise raw(CAP_NET_RAW);
      if (setsockopt(udp, SOL_SOCKET, SO_BINDTODEVICE, "lo", 3) != 0)
        return errno_text("SO_BINDTODEVICE");
    }
    sockaddr_in6 sa{};
    sa.sin6_family = AF_INET6;
    sa.sin6_port = htons(16962);
    sa.sin6_addr = in6addr_any;
    if (bind(udp, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) return errno_text("bind udp");

    const int tcp = socket(AF_INET6, SOCK_STREAM, 0);
    const int one = 1;
    setsockopt(tcp, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(tcp, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) return errno_text("bind tcp");
    if (listen(tcp, 8) != 0) return errno_text("listen tcp");
    close(tcp);
    close(udp);

    if (auto e = bind_unix("/tmp/alfred-privtest-" + std::to_string(getpid()) + ".sock");
        !e.empty())
      return e;
    struct stat st{};
    if (stat("/var/run", &st) == 0 && st.st_uid == 0) {
      if (auto e = bind_unix("/var/run/alfred-privtest-" + std::to_string(getpid()) + ".sock");
          !e.empty())
        return e;
    }
    return expect_exactly(CAP_EFFECTIVE, {});
  });
}

}  // namespace
}  // namespace alfred::sys
