#pragma once
// Least privilege for the daemon. alfred needs exactly two capabilities, and
// only for short moments: CAP_NET_RAW to bind sockets to an interface
// (SO_BINDTODEVICE) and CAP_NET_ADMIN for the admin-only batman-adv netlink
// dumps. Everything else it does works without any capability.
//
// Linux capabilities are per thread, and setuid() is applied to all threads
// while PR_SET_KEEPCAPS is not: call reduce_capabilities() before the daemon
// starts any thread, and hold a CapabilityRaise only on the thread doing the
// privileged system call.
#include <sys/capability.h>

namespace alfred::sys {

// Keeps CAP_NET_RAW and CAP_NET_ADMIN in the permitted set (each only if it
// is permitted now), clears the effective and inheritable sets, and for
// setuid-root installs drops to the real uid/gid for good while keeping those
// two capabilities. Returns false (with "alfred: ..." on stderr) when a step
// fails; the process may then still hold more privilege than intended and
// the caller should refuse to run.
bool reduce_capabilities();

// Makes one capability effective for the lifetime of the guard and lowers it
// again afterwards, unless it was already effective before (so nesting and
// processes that never reduced their capabilities are unaffected). A
// capability that is not permitted is silently not raised: the guarded call
// then fails with its own EPERM, which is where the error belongs.
class CapabilityRaise {
 public:
  explicit CapabilityRaise(cap_value_t cap);
  ~CapabilityRaise();

  CapabilityRaise(const CapabilityRaise&) = delete;
  CapabilityRaise& operator=(const CapabilityRaise&) = delete;
  CapabilityRaise(CapabilityRaise&&) = delete;
  CapabilityRaise& operator=(CapabilityRaise&&) = delete;

  // Whether the capability is effective inside the guarded scope.
  bool active() const { return active_; }

 private:
  cap_value_t cap_;
  bool active_ = false;
  bool lower_on_exit_ = false;
};

}  // namespace alfred::sys
