#include "sys/privileges.hpp"

#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

namespace alfred::sys {
namespace {

struct CapDeleter {
  void operator()(struct _cap_struct* c) const { cap_free(c); }
};
using CapPtr = std::unique_ptr<struct _cap_struct, CapDeleter>;

void report(const char* what) {
  std::fprintf(stderr, "alfred: %s: %s\n", what, std::strerror(errno));
}

bool has_flag(cap_t caps, cap_value_t cap, cap_flag_t set) {
  cap_flag_value_t value = CAP_CLEAR;
  return cap_get_flag(caps, cap, set, &value) == 0 && value == CAP_SET;
}

bool set_effective(cap_value_t cap, cap_flag_value_t value) {
  CapPtr caps(cap_get_proc());
  if (!caps) {
    report("cannot read capabilities");
    return false;
  }
  if (cap_set_flag(caps.get(), CAP_EFFECTIVE, 1, &cap, value) != 0 ||
      cap_set_proc(caps.get()) != 0) {
    report(value == CAP_SET ? "cannot raise capability" : "cannot lower capability");
    return false;
  }
  return true;
}

// For a setuid binary: become the invoking user in all of real, effective
// and saved ids, so the original identity cannot be regained.
bool drop_to_real_ids() {
  const gid_t gid = getgid();
  if (getegid() != gid && setgid(gid) != 0) {
    report("cannot drop group privileges");
    return false;
  }

  const uid_t uid = getuid();
  if (geteuid() != uid) {
    // Without KEEPCAPS the kernel empties the permitted set when the last
    // uid 0 goes away, and we would lose the two capabilities we still need.
    if (prctl(PR_SET_KEEPCAPS, 1L, 0L, 0L, 0L) != 0) {
      report("cannot keep capabilities across setuid");
      return false;
    }
    const int rc = setuid(uid);
    const int saved_errno = errno;
    // KEEPCAPS must not leak into any later uid change.
    prctl(PR_SET_KEEPCAPS, 0L, 0L, 0L, 0L);
    if (rc != 0) {
      errno = saved_errno;
      report("cannot drop user privileges");
      return false;
    }
  }

  // setuid() without CAP_SETUID only changes the effective id; a saved
  // set-user-ID of root would allow taking everything back.
  uid_t r = 0, e = 0, s = 0;
  gid_t rg = 0, eg = 0, sg = 0;
  if (getresuid(&r, &e, &s) != 0 || getresgid(&rg, &eg, &sg) != 0) {
    report("cannot verify user ids");
    return false;
  }
  if (r != uid || e != uid || s != uid || rg != gid || eg != gid || sg != gid) {
    std::fprintf(stderr, "alfred: user/group ids could not be dropped completely\n");
    return false;
  }
  return true;
}

}  // namespace

bool reduce_capabilities() {
  CapPtr current(cap_get_proc());
  if (!current) {
    report("cannot read capabilities");
    return false;
  }

  const cap_value_t wanted[] = {CAP_NET_RAW, CAP_NET_ADMIN};
  cap_value_t keep[2];
  int nkeep = 0;
  for (cap_value_t cap : wanted)
    if (has_flag(current.get(), cap, CAP_PERMITTED)) keep[nkeep++] = cap;

  // Needs CAP_SETUID/CAP_SETGID, so it has to happen before the sets shrink.
  if (!drop_to_real_ids()) return false;

  // cap_init() starts with all sets clear: inheritable (and with it ambient)
  // and effective end up empty, permitted holds only what we keep.
  CapPtr reduced(cap_init());
  if (!reduced) {
    report("cannot allocate capability set");
    return false;
  }
  if (nkeep > 0 && cap_set_flag(reduced.get(), CAP_PERMITTED, nkeep, keep, CAP_SET) != 0) {
    report("cannot build capability set");
    return false;
  }
  if (cap_set_proc(reduced.get()) != 0) {
    report("cannot reduce capabilities");
    return false;
  }
  return true;
}

CapabilityRaise::CapabilityRaise(cap_value_t cap) : cap_(cap) {
  CapPtr caps(cap_get_proc());
  if (!caps) {
    report("cannot read capabilities");
    return;
  }
  if (has_flag(caps.get(), cap_, CAP_EFFECTIVE)) {
    active_ = true;
    return;
  }
  if (!has_flag(caps.get(), cap_, CAP_PERMITTED)) return;
  if (set_effective(cap_, CAP_SET)) {
    active_ = true;
    lower_on_exit_ = true;
  }
}

CapabilityRaise::~CapabilityRaise() {
  if (lower_on_exit_) set_effective(cap_, CAP_CLEAR);
}

}  // namespace alfred::sys
