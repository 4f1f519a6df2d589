#pragma once
// The UDP side of one network interface: a unicast socket on the interface's
// own address and a multicast socket on the alfred group, both bound to the
// device. Sending never blocks: datagrams that the kernel will not take now
// wait in a bounded queue, and a transaction is encoded one packet at a time
// as the socket drains, so a large sync holds one packet, not the data set,
// and a queued one holds none until its turn.
//
// Two queues: our own traffic (announcements, requests, syncs) and answers to
// other nodes' requests. Answers go only when ours is sent, and have a
// smaller queue, so requests from others never crowd out our own sending.
#include <sys/socket.h>

#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "auth/datagram_guard.hpp"
#include "engine/log_limiter.hpp"
#include "engine/route.hpp"
#include "net/asio.hpp"
#include "wire/push_encoder.hpp"

namespace alfred::net {

class LinkSocket {
 public:
  // `to`: the address the datagram was sent to (ours, or the group's).
  using Receiver = std::function<void(LinkSocket& link, const PeerAddress& from, const auth::Destination& to,
                                      std::span<const std::uint8_t>)>;

  struct Stats {
    std::uint64_t datagrams_out = 0, bytes_out = 0, datagrams_in = 0, bytes_in = 0;
    std::uint64_t dropped_out = 0;
  };

  LinkSocket(asio::io_context& io, std::string name, std::optional<asio::ip::address_v4> group4,
             Receiver receiver);
  ~LinkSocket();
  LinkSocket(const LinkSocket&) = delete;
  LinkSocket& operator=(const LinkSocket&) = delete;

  bool open(std::string& error);
  void close();
  bool is_open() const { return open_; }
  // False (with a reason) when the interface vanished or changed index or MAC.
  bool still_valid(std::string& why) const;

  // Authenticated mesh: every datagram is sealed by `guard` before it
  // leaves (nullptr: plain, as upstream). The guard outlives the socket.
  void set_guard(auth::DatagramGuard* guard) { guard_ = guard; }

  enum class Priority { Own, Answer };
  void send(const PeerAddress& to, std::vector<std::uint8_t> packet);
  void send(const PeerAddress& to, wire::PushEncoder transaction, Priority priority = Priority::Own);

  // The MAC of an IPv4 neighbour from the kernel's table, without waiting
  // (nullopt when the entry is missing or incomplete).
  std::optional<Mac> neighbour_mac(const PeerAddress& addr);
  // Makes the kernel resolve an IPv4 neighbour (one probe datagram).
  void start_resolution(const PeerAddress& addr);
  // Whether an IPv4 address is in this link's subnet (true when no netmask
  // is known): only those can be neighbours to resolve.
  bool on_link(const PeerAddress& addr) const;

  const std::string& name() const { return name_; }
  const Mac& mac() const { return mac_; }
  const PeerAddress& own() const { return own_; }
  unsigned index() const { return index_; }
  bool ipv4() const { return group4_.has_value(); }
  std::optional<asio::ip::address_v4> ipv4_netmask() const { return netmask4_; }
  const Stats& stats() const { return stats_; }

  // Queued transmissions per interface: enough for a sync to every primary
  // the engine may know (512) plus announcements and requests.
  static constexpr std::size_t kMaxQueued = 1024;
  static constexpr std::size_t kMaxQueuedAnswers = 64;

 private:
  struct Pending {
    asio::ip::udp::endpoint to;
    std::vector<std::uint8_t> packet;          // the next datagram, once encoded
    std::optional<wire::PushEncoder> more;     // what follows it
    bool plain_owed = false;  // transition: its sealed copy went, the plain one not yet
  };

  asio::ip::udp::endpoint endpoint(const PeerAddress& to) const;
  void enqueue(Pending p, Priority priority);
  void flush();
  enum class Sent { Ok, Blocked, Failed };
  // One datagram now, counted; Blocked: the socket has no room, and a wait
  // for it is armed (flush() resumes from the same packet).
  Sent send_now(const std::vector<std::uint8_t>& datagram, const asio::ip::udp::endpoint& to);
  void wait_writable();
  static void clear_error(asio::ip::udp::socket& sock);
  void wait_readable(asio::ip::udp::socket& sock);
  void drain(asio::ip::udp::socket& sock);
  std::optional<auth::Destination> destination(const msghdr& msg) const;
  static auth::Destination destination_of(const asio::ip::address& to);
  bool open6(std::string& error);
  bool open4(std::string& error);

  std::string name_;
  std::optional<asio::ip::address_v4> group4_;
  std::optional<asio::ip::address_v4> netmask4_;
  Receiver receiver_;
  asio::ip::udp::socket unicast_;
  asio::ip::udp::socket multicast_;
  bool open_ = false;
  bool writing_ = false;
  Mac mac_{};
  PeerAddress own_;
  unsigned index_ = 0;
  std::deque<Pending> queue_;    // our own traffic, first
  std::deque<Pending> answers_;  // answers to others' requests, after it
  std::vector<std::uint8_t> rxbuf_;
  auth::DatagramGuard* guard_ = nullptr;
  Stats stats_;
  LogLimiter drop_log_{std::chrono::seconds(10)};
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace alfred::net
