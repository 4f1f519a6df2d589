#include "net/link_socket.hpp"

#include <arpa/inet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <sys/capability.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "net/log.hpp"
#include "sys/privileges.hpp"
#include "wire/packet.hpp"

namespace alfred::net {
namespace {

struct Fd {
  int fd = -1;
  Fd() : fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

bool ifreq_for(const std::string& name, ifreq& ifr) {
  if (name.size() >= IFNAMSIZ) return false;
  std::memset(&ifr, 0, sizeof ifr);
  std::memcpy(ifr.ifr_name, name.data(), name.size());
  return true;
}

bool bind_to_device(int fd, const std::string& name, std::string& error) {
  sys::CapabilityRaise raw(CAP_NET_RAW);
  if (::setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, name.c_str(),
                   static_cast<socklen_t>(name.size() + 1)) != 0) {
    error = "can't bind to device " + name + ": " + std::strerror(errno);
    return false;
  }
  return true;
}


}  // namespace

LinkSocket::LinkSocket(asio::io_context& io, std::string name,
                       std::optional<asio::ip::address_v4> group4, Receiver receiver)
    : name_(std::move(name)),
      group4_(group4),
      receiver_(std::move(receiver)),
      unicast_(io),
      multicast_(io),
      rxbuf_(65536) {}

LinkSocket::~LinkSocket() {
  *alive_ = false;
  close();
}

bool LinkSocket::open(std::string& error) {
  close();
  bool ok = group4_ ? open4(error) : open6(error);
  if (!ok) {
    asio::error_code ec;
    unicast_.close(ec);
    multicast_.close(ec);
    return false;
  }
  unicast_.non_blocking(true);
  multicast_.non_blocking(true);
  // Every datagram's destination address comes with it (see drain()).
  int on = 1;
  for (auto* sk : {&unicast_, &multicast_}) {
    int r = group4_ ? ::setsockopt(sk->native_handle(), IPPROTO_IP, IP_PKTINFO, &on, sizeof on)
                    : ::setsockopt(sk->native_handle(), IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof on);
    if (r != 0) {
      error = "can't ask for destination addresses on " + name_ + ": " + std::strerror(errno);
      asio::error_code ignored;
      unicast_.close(ignored);
      multicast_.close(ignored);
      return false;
    }
  }
  // Large syncs are bursts of 64 KiB datagrams; give the kernel room for a few.
  asio::error_code ec;
  unicast_.set_option(asio::socket_base::send_buffer_size(1 << 20), ec);
  unicast_.set_option(asio::socket_base::receive_buffer_size(1 << 20), ec);
  multicast_.set_option(asio::socket_base::receive_buffer_size(1 << 20), ec);
  open_ = true;
  wait_readable(unicast_);
  wait_readable(multicast_);
  return true;
}

bool LinkSocket::open6(std::string& error) {
  index_ = ::if_nametoindex(name_.c_str());
  if (index_ == 0) {
    error = "can't get interface " + name_ + ": " + std::strerror(errno);
    return false;
  }
  ifreq ifr;
  Fd probe;
  if (!ifreq_for(name_, ifr) || ::ioctl(probe.fd, SIOCGIFHWADDR, &ifr) != 0) {
    error = "can't get MAC address of " + name_ + ": " + std::strerror(errno);
    return false;
  }
  std::memcpy(mac_.data(), ifr.ifr_hwaddr.sa_data, 6);
  own_ = PeerAddress{};
  auto ll = wire::mac_to_link_local(mac_);
  std::copy(ll.begin(), ll.end(), own_.ip.begin());

  asio::error_code ec;
  unicast_.open(asio::ip::udp::v6(), ec);
  if (!ec) multicast_.open(asio::ip::udp::v6(), ec);
  if (ec) {
    error = "can't open socket: " + ec.message();
    return false;
  }
  if (!bind_to_device(unicast_.native_handle(), name_, error) ||
      !bind_to_device(multicast_.native_handle(), name_, error))
    return false;
  asio::ip::udp::endpoint uep(asio::ip::address_v6(ll, index_), wire::kPort);
  unicast_.bind(uep, ec);
  if (ec) {
    if (ec.value() == EADDRNOTAVAIL)
      error = "can't bind to interface " + name_ + "; expected ipv6 address not found: " +
              uep.address().to_string();
    else
      error = "can't bind: " + ec.message();
    return false;
  }
  auto group = asio::ip::make_address_v6("ff02::1");
  group.scope_id(index_);
  multicast_.bind(asio::ip::udp::endpoint(group, wire::kPort), ec);
  if (ec) {
    error = "can't bind multicast socket on " + name_ + ": " + ec.message();
    return false;
  }
  multicast_.set_option(asio::ip::multicast::join_group(group, index_), ec);
  if (ec) {
    error = "can't add multicast membership on " + name_ + ": " + ec.message();
    return false;
  }
  return true;
}

bool LinkSocket::open4(std::string& error) {
  index_ = ::if_nametoindex(name_.c_str());
  ifreq ifr;
  Fd probe;
  if (!ifreq_for(name_, ifr) || ::ioctl(probe.fd, SIOCGIFHWADDR, &ifr) != 0) {
    error = "ipv4: can't get MAC address of " + name_ + ": " + std::strerror(errno);
    return false;
  }
  std::memcpy(mac_.data(), ifr.ifr_hwaddr.sa_data, 6);
  ifreq ifa;
  ifreq_for(name_, ifa);
  if (::ioctl(probe.fd, SIOCGIFADDR, &ifa) != 0) {
    error = "ipv4: can't get IP address of " + name_ + ": " + std::strerror(errno);
    return false;
  }
  in_addr local = reinterpret_cast<sockaddr_in*>(&ifa.ifr_addr)->sin_addr;
  own_ = PeerAddress{};
  own_.v4 = true;
  std::memcpy(own_.ip.data(), &local, 4);
  ifreq ifm;
  ifreq_for(name_, ifm);
  if (::ioctl(probe.fd, SIOCGIFNETMASK, &ifm) == 0) {
    in_addr mask = reinterpret_cast<sockaddr_in*>(&ifm.ifr_netmask)->sin_addr;
    netmask4_ = asio::ip::address_v4(ntohl(mask.s_addr));
  }

  asio::error_code ec;
  unicast_.open(asio::ip::udp::v4(), ec);
  if (!ec) multicast_.open(asio::ip::udp::v4(), ec);
  if (ec) {
    error = "ipv4: can't open socket: " + ec.message();
    return false;
  }
  if (!bind_to_device(unicast_.native_handle(), name_, error) ||
      !bind_to_device(multicast_.native_handle(), name_, error))
    return false;
  unicast_.set_option(asio::socket_base::reuse_address(true), ec);
  multicast_.set_option(asio::socket_base::reuse_address(true), ec);
  unicast_.bind(asio::ip::udp::endpoint(asio::ip::address_v4::any(), wire::kPort), ec);
  if (ec) {
    error = "ipv4: can't bind: " + ec.message();
    return false;
  }
  multicast_.bind(asio::ip::udp::endpoint(*group4_, wire::kPort), ec);
  if (ec) {
    error = "ipv4: can't bind mc: " + ec.message();
    return false;
  }
  asio::ip::address_v4 local4(ntohl(local.s_addr));
  multicast_.set_option(asio::ip::multicast::join_group(*group4_, local4), ec);
  if (ec) {
    error = "ipv4: can't add multicast membership: " + ec.message();
    return false;
  }
  unicast_.set_option(asio::ip::multicast::outbound_interface(local4), ec);
  // The unicast socket is bound to any address, so the kernel would hand it
  // every group datagram too, and each would be taken twice (with keys: the
  // second refused as a replay, in an honest mesh). The group socket has
  // them.
  int off = 0;
  if (::setsockopt(unicast_.native_handle(), IPPROTO_IP, IP_MULTICAST_ALL, &off, sizeof off) != 0)
    log_verbose("ipv4: can't stop group datagrams on the unicast socket of " + name_ + " (" +
                std::strerror(errno) + "): each is taken twice");
  return true;
}

void LinkSocket::close() {
  asio::error_code ec;
  if (unicast_.is_open()) unicast_.close(ec);
  if (multicast_.is_open()) multicast_.close(ec);
  open_ = false;
  writing_ = false;
  queue_.clear();
  answers_.clear();
}

bool LinkSocket::still_valid(std::string& why) const {
  unsigned idx = ::if_nametoindex(name_.c_str());
  if (idx == 0) {
    why = "interface " + name_ + " is gone";
    return false;
  }
  if (!group4_ && idx != index_) {
    why = "iface index changed from " + std::to_string(index_) + " to " + std::to_string(idx);
    return false;
  }
  ifreq ifr;
  Fd probe;
  if (!ifreq_for(name_, ifr) || ::ioctl(probe.fd, SIOCGIFHWADDR, &ifr) != 0) {
    why = "can't get MAC address of " + name_;
    return false;
  }
  if (std::memcmp(ifr.ifr_hwaddr.sa_data, mac_.data(), 6) != 0) {
    why = "iface mac changed";
    return false;
  }
  if (group4_) {
    ifreq ifa;
    ifreq_for(name_, ifa);
    if (::ioctl(probe.fd, SIOCGIFADDR, &ifa) != 0 ||
        std::memcmp(&reinterpret_cast<sockaddr_in*>(&ifa.ifr_addr)->sin_addr, own_.ip.data(), 4) !=
            0) {
      why = "iface ipv4 address changed";
      return false;
    }
  }
  return true;
}

asio::ip::udp::endpoint LinkSocket::endpoint(const PeerAddress& to) const {
  if (group4_) {
    if (to.multicast) return {*group4_, wire::kPort};
    std::array<unsigned char, 4> b{to.ip[0], to.ip[1], to.ip[2], to.ip[3]};
    return {asio::ip::address_v4(b), wire::kPort};
  }
  if (to.multicast) {
    auto g = asio::ip::make_address_v6("ff02::1");
    g.scope_id(index_);
    return {g, wire::kPort};
  }
  asio::ip::address_v6::bytes_type b;
  std::copy(to.ip.begin(), to.ip.end(), b.begin());
  return {asio::ip::address_v6(b, index_), wire::kPort};
}

void LinkSocket::send(const PeerAddress& to, std::vector<std::uint8_t> packet) {
  if (!open_) return;
  enqueue(Pending{endpoint(to), std::move(packet), std::nullopt}, Priority::Own);
}

void LinkSocket::send(const PeerAddress& to, wire::PushEncoder transaction, Priority priority) {
  if (!open_) return;
  // Encoded when its turn comes, so a long queue holds no packets. Sealed,
  // each packet grows by the seal's overhead and must still fit a datagram.
  if (guard_) transaction = transaction.limited_to(auth::kMaxSealable);
  enqueue(Pending{endpoint(to), {}, std::move(transaction)}, priority);
}

void LinkSocket::enqueue(Pending p, Priority priority) {
  auto& q = priority == Priority::Own ? queue_ : answers_;
  std::size_t cap = priority == Priority::Own ? kMaxQueued : kMaxQueuedAnswers;
  if (q.size() >= cap) {
    ++stats_.dropped_out;
    if (auto suffix = drop_log_.admit(priority == Priority::Own ? "own" : "answer", Clock::now()))
      log_error(std::string("send queue of ") + name_ +
                (priority == Priority::Own ? "" : " for answers") +
                " full, dropping a transmission to " + p.to.address().to_string() + *suffix);
    return;
  }
  q.push_back(std::move(p));
  if (!writing_) flush();
}

namespace {
// Microseconds since the epoch, for the counters of sealed datagrams (never
// negative: a clock before 1970 counts from 0).
std::uint64_t wall_clock_us() {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
  return us > 0 ? static_cast<std::uint64_t>(us) : 0;
}
}  // namespace

void LinkSocket::flush() {
  for (;;) {
    // One datagram at a time from the first queue with something to send:
    // our own traffic overtakes an answer between two of its packets.
    auto& q = !queue_.empty() ? queue_ : answers_;
    if (q.empty()) return;
    Pending& p = q.front();
    if (p.packet.empty() && !(p.more && p.more->next(p.packet))) {
      q.pop_front();
      continue;
    }
    if (!p.plain_owed) {
      // Sealed afresh at every attempt: after a would-block the front may be
      // another queue's packet (our own traffic overtakes answers).
      std::vector<std::uint8_t> sealed;
      if (guard_) {
        sealed = guard_->seal(mac_, destination_of(p.to.address()), p.packet, wall_clock_us());
        if (sealed.empty()) {
          ++stats_.dropped_out;
          log_error("a packet of " + std::to_string(p.packet.size()) + " bytes to " +
                    p.to.address().to_string() + " is too large to seal, dropped");
          p.packet.clear();
          if (!p.more) q.pop_front();
          continue;
        }
      }
      auto sent = send_now(guard_ ? sealed : p.packet, p.to);
      if (sent == Sent::Blocked) return;
      // Transition: the same packet plain as well, for the nodes that have
      // no key yet (they drop the sealed one; keyed ones take either, and
      // the second copy of a packet or a txend changes nothing).
      p.plain_owed = sent == Sent::Ok && guard_ && guard_->mode() == auth::AuthMode::Transition;
    }
    // Owed like any datagram: a would-block waits for room.
    if (p.plain_owed && send_now(p.packet, p.to) == Sent::Blocked) return;
    p.plain_owed = false;
    p.packet.clear();
    if (!p.more) q.pop_front();
  }
}

LinkSocket::Sent LinkSocket::send_now(const std::vector<std::uint8_t>& datagram,
                                      const asio::ip::udp::endpoint& to) {
  asio::error_code ec;
  unicast_.send_to(asio::buffer(datagram), to, 0, ec);
  if (ec == asio::error::would_block || ec == asio::error::try_again) {
    wait_writable();
    return Sent::Blocked;
  }
  if (ec) {
    // A neighbour that is unreachable or an interface going down must not
    // stall the rest of the queue; the next period retries.
    ++stats_.dropped_out;
    log_verbose("send on " + name_ + " to " + to.address().to_string() + " failed: " + ec.message());
    return Sent::Failed;
  }
  ++stats_.datagrams_out;
  stats_.bytes_out += datagram.size();
  return Sent::Ok;
}

void LinkSocket::clear_error(asio::ip::udp::socket& sock) {
  int err = 0;
  socklen_t len = sizeof err;
  ::getsockopt(sock.native_handle(), SOL_SOCKET, SO_ERROR, &err, &len);
}

void LinkSocket::wait_writable() {
  writing_ = true;
  std::weak_ptr<bool> alive = alive_;
  unicast_.async_wait(asio::socket_base::wait_write, [this, alive](const asio::error_code& ec) {
    if (alive.expired() || ec == asio::error::operation_aborted || !unicast_.is_open()) return;
    // Any other error is a pending socket error (an ICMP report, a link that
    // went down); it must not stop the queue for good.
    if (ec) clear_error(unicast_);
    writing_ = false;
    flush();
  });
}

void LinkSocket::wait_readable(asio::ip::udp::socket& sock) {
  std::weak_ptr<bool> alive = alive_;
  sock.async_wait(asio::socket_base::wait_read, [this, alive, &sock](const asio::error_code& ec) {
    if (alive.expired() || ec == asio::error::operation_aborted || !sock.is_open()) return;
    if (ec) {
      log_verbose("socket error on " + name_ + ": " + ec.message());
      clear_error(sock);
    }
    drain(sock);
  });
}

void LinkSocket::drain(asio::ip::udp::socket& sock) {
  // Bounded so that one flooded socket cannot starve the rest of the loop.
  for (int i = 0; i < 64; ++i) {
    // recvmsg, not asio's receive_from: the destination address (pktinfo)
    // is what a sealed datagram's tag covers besides its header.
    sockaddr_storage from{};
    iovec iov{rxbuf_.data(), rxbuf_.size()};
    alignas(cmsghdr) unsigned char control[CMSG_SPACE(sizeof(in6_pktinfo)) + CMSG_SPACE(sizeof(in_pktinfo))];
    msghdr msg{};
    msg.msg_name = &from;
    msg.msg_namelen = sizeof from;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t got = ::recvmsg(sock.native_handle(), &msg, MSG_DONTWAIT);
    if (got < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == EINTR) continue;
      log_verbose("receive on " + name_ + " failed: " + std::strerror(errno));
      break;
    }
    auto n = static_cast<std::size_t>(got);
    ++stats_.datagrams_in;
    stats_.bytes_in += n;
    PeerAddress src;
    if (from.ss_family == AF_INET) {
      src.v4 = true;
      std::memcpy(src.ip.data(), &reinterpret_cast<const sockaddr_in*>(&from)->sin_addr, 4);
    } else if (from.ss_family == AF_INET6) {
      const auto& a6 = reinterpret_cast<const sockaddr_in6*>(&from)->sin6_addr;
      if (IN6_IS_ADDR_V4MAPPED(&a6)) continue;
      std::memcpy(src.ip.data(), &a6, 16);
    } else {
      continue;
    }
    // Both sockets ask for pktinfo; without it (or cut short) the address a
    // sealed datagram was sent to is not known, and guessing could refuse
    // an honest one as a forgery.
    auto to = (msg.msg_flags & MSG_CTRUNC) ? std::nullopt : destination(msg);
    if (!to) {
      if (auto suffix = drop_log_.admit("pktinfo", Clock::now()))
        log_error("a datagram on " + name_ + " came without its destination address, dropped" + *suffix);
      continue;
    }
    std::weak_ptr<bool> alive = alive_;
    receiver_(*this, src, *to, std::span<const std::uint8_t>(rxbuf_.data(), n));
    if (alive.expired() || !sock.is_open()) return;  // the receiver closed us
  }
  wait_readable(sock);
}

std::optional<auth::Destination> LinkSocket::destination(const msghdr& msg) const {
  auto& m = const_cast<msghdr&>(msg);  // CMSG_NXTHDR takes non-const pointers, and writes nothing
  for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
    if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO &&
        c->cmsg_len >= CMSG_LEN(sizeof(in6_pktinfo))) {
      in6_pktinfo info;
      std::memcpy(&info, CMSG_DATA(c), sizeof info);
      auth::Destination d;
      std::memcpy(d.data(), &info.ipi6_addr, 16);
      return d;
    }
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO && c->cmsg_len >= CMSG_LEN(sizeof(in_pktinfo))) {
      in_pktinfo info;
      std::memcpy(&info, CMSG_DATA(c), sizeof info);
      std::array<std::uint8_t, 4> a;
      std::memcpy(a.data(), &info.ipi_addr, 4);
      return auth::ipv4_destination(a);
    }
  }
  return std::nullopt;
}

auth::Destination LinkSocket::destination_of(const asio::ip::address& to) {
  if (to.is_v4()) {
    auto b = to.to_v4().to_bytes();
    return auth::ipv4_destination(b);
  }
  auth::Destination d;
  auto b = to.to_v6().to_bytes();
  std::copy(b.begin(), b.end(), d.begin());
  return d;
}

std::optional<Mac> LinkSocket::neighbour_mac(const PeerAddress& addr) {
  if (!addr.v4 || !open_) return std::nullopt;
  arpreq req{};
  auto* sin = reinterpret_cast<sockaddr_in*>(&req.arp_pa);
  sin->sin_family = AF_INET;
  std::memcpy(&sin->sin_addr, addr.ip.data(), 4);
  std::strncpy(req.arp_dev, name_.c_str(), sizeof(req.arp_dev) - 1);
  if (::ioctl(unicast_.native_handle(), SIOCGARP, &req) == 0 && (req.arp_flags & ATF_COM)) {
    Mac m;
    std::memcpy(m.data(), req.arp_ha.sa_data, 6);
    return m;
  }
  return std::nullopt;
}

bool LinkSocket::on_link(const PeerAddress& addr) const {
  if (!addr.v4 || !own_.v4 || !netmask4_) return true;
  auto mask = netmask4_->to_bytes();
  for (std::size_t i = 0; i < 4; ++i)
    if ((addr.ip[i] & mask[i]) != (own_.ip[i] & mask[i])) return false;
  return true;
}

void LinkSocket::start_resolution(const PeerAddress& addr) {
  if (!addr.v4 || !open_) return;
  // Make the kernel resolve it: any unicast packet to the address starts ARP
  // (and the kernel retries the request itself). Port 9 is discard; the byte
  // carries no meaning.
  std::uint8_t probe = 0;
  std::array<unsigned char, 4> b{addr.ip[0], addr.ip[1], addr.ip[2], addr.ip[3]};
  asio::error_code ec;
  unicast_.send_to(asio::buffer(&probe, 1), asio::ip::udp::endpoint(asio::ip::address_v4(b), 9), 0,
                   ec);
}

}  // namespace alfred::net
