#pragma once
// The running daemon: the protocol engine wired to real sockets and timers.
#include <deque>
#include <memory>
#include <random>
#include <vector>

#include "auth/datagram_guard.hpp"
#include "cli/options.hpp"
#include "engine/engine.hpp"
#include "ipc/unix_server.hpp"
#include "net/asio.hpp"
#include "net/batadv_tq.hpp"
#include "net/link_socket.hpp"
#include "net/tcp_transport.hpp"

namespace alfred::net {

class Daemon final : public Effects {
 public:
  Daemon(asio::io_context& io, const cli::Options& options);
  ~Daemon() override;

  // Opens the unix socket and the interfaces and arms the timers. Returns 0,
  // or the exit code after printing why the daemon cannot start.
  int start();

  // --- Effects
  void send_packet(const Route& to, std::vector<std::uint8_t> packet) override;
  void send_push(const Route& to, wire::PushEncoder transaction, PushKind kind) override;
  void forward_request(const Route& to, const wire::Request& request) override;
  void keep_session(const Route& to) override;
  void reply_records(ClientId client, Snapshot records, std::uint16_t tx_id) override;
  void reply_error(ClientId client, std::uint16_t tx_id) override;
  void event(std::uint8_t type, const Mac& source) override;
  void run_update_command(const std::bitset<256>& types) override;
  void reconfigure_interfaces(const std::vector<std::string>& names) override;
  void log(std::string_view message) override;
  bool logging() const override;

 private:
  struct Unresolved {  // an IPv4 datagram waiting for its sender's MAC
    std::string iface;
    PeerAddress from;
    auth::Destination to;
    std::vector<std::uint8_t> bytes;
    TimePoint deadline;
  };

  LinkSocket* link(const std::string& name);
  void make_links(const std::vector<std::string>& names);
  int open_links();
  void reopen_closed_links();
  bool is_own_address(const PeerAddress& a) const;
  void link_opened(LinkSocket& link);
  void link_closed(LinkSocket& link);
  std::optional<Mac> peer_mac(const std::string& iface, const PeerAddress& peer);
  void on_datagram(LinkSocket& link, const PeerAddress& from, const auth::Destination& to,
                   std::span<const std::uint8_t> bytes);
  void deliver(const Route& from, std::span<const std::uint8_t> bytes);
  // A datagram from the link: opened first in an authenticated mesh.
  // `to`: the address it reached us at, which a sealed datagram's tag covers.
  void deliver_datagram(const Route& from, const auth::Destination& to, std::span<const std::uint8_t> bytes);
  bool load_keys(std::string& error);
  void refused(const PeerAddress& addr, std::optional<Mac> mac, auth::Refusal why);
  void wait_for_hup();
  void schedule_auth_log();
  void log_auth_stats();
  void retry_unresolved();
  void on_ipc(ClientId client, std::span<const std::uint8_t> message);
  void schedule_sync();
  void on_sync();
  void arm_tx_timer();
  void release_memory();
  void schedule_check();

  asio::io_context& io_;
  cli::Options opts_;
  std::optional<asio::ip::address_v4> group4_;
  BatadvTq batadv_;
  std::mt19937 rng_;
  Engine engine_;
  std::vector<std::unique_ptr<LinkSocket>> links_;
  TcpTransport tcp_;
  ipc::UnixServer ipc_;
  asio::steady_timer sync_timer_;
  asio::steady_timer tx_timer_;
  bool tx_armed_ = false;  // a wait on tx_timer_ is pending
  asio::steady_timer check_timer_;
  asio::steady_timer arp_timer_;
  asio::signal_set signals_;
  // Authenticated mesh (--keyfile): seals and opens every datagram; null
  // without a key file. SIGHUP re-reads the keys.
  std::unique_ptr<auth::DatagramGuard> guard_;
  asio::signal_set hup_;
  asio::steady_timer auth_log_timer_;
  LogLimiter refusal_log_{std::chrono::seconds(10)};
  Duration period_;
  TimePoint next_sync_;
  TimePoint last_reopen_{};
  std::deque<Unresolved> unresolved_;
  std::size_t unresolved_bytes_ = 0;
  std::size_t buffered_peak_ = 0;
};

}  // namespace alfred::net
