#pragma once
// The daemon's unix socket. Every client is served asynchronously: one that
// connects and stays silent, writes slowly, stops reading its answer, or
// registers for events and never reads holds only its own small buffers, for
// a bounded time, and never delays anyone else.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "engine/log_limiter.hpp"
#include "engine/route.hpp"
#include "net/asio.hpp"
#include "store/record.hpp"

namespace alfred::ipc {

struct UnixServerLimits {
  // Listeners count toward it. When full, one client is dropped to make
  // room: an answer whose reader has not moved for reply_evict_idle, else
  // the client sending its message longest, else the answer that moved
  // least recently (progress: a byte received or sent). Listeners and
  // clients waiting for a forwarded answer (the engine's transaction
  // timeout ends those) are never evicted.
  std::size_t max_clients = 512;
  std::chrono::milliseconds message_timeout{10000};  // from accept to a complete message
  // An answer that makes no progress for this long (the client stopped
  // reading) is abandoned, and so is one not written in full by the end of
  // reply_timeout after it started (a client reading a trickle).
  std::chrono::milliseconds write_stall_timeout{10000};
  std::chrono::milliseconds reply_timeout{60000};
  std::size_t max_listener_backlog = 16 * 1024;  // unread event bytes we hold
  // What the answers being written may hold together. An answer keeps a
  // list of weak references to its records (24 bytes a record with its
  // key), not the records: one the store replaces while the answer is
  // written is looked up again (set_lookup), its current version sent, and
  // one it dropped is left out, so a slow reader never keeps old data alive
  // beyond the batch being written. 512 clients that never read an answer
  // of 32,768 records held 256 MB of lists; 16 MiB holds 21 such answers at
  // once. Past it, answers are abandoned to make room: first those whose
  // clients have not moved for reply_evict_idle (least recently moving
  // first), then those running for reply_evict_age (longest running first:
  // a local answer takes milliseconds, so these are readers that trickle);
  // if that is not enough, the new answer is refused with an error.
  std::size_t max_reply_bytes = 16u << 20;
  std::chrono::milliseconds reply_evict_idle{1000};
  std::chrono::milliseconds reply_evict_age{5000};
  // SO_SNDBUF of every client socket (the kernel doubles it): what the kernel
  // holds for a client that does not read, whatever net.core.wmem_default
  // says, and what lets a stalled reader be noticed.
  int send_buffer = 64 * 1024;
  // Listeners have no timeout; this cap leaves room in the client table for
  // everyone else. Registrations beyond it are closed at once.
  std::size_t max_listeners = 384;
  // A failed accept (EMFILE, ENFILE, ENOMEM, ...) is retried after a pause
  // that doubles from accept_retry_min to accept_retry_max; a success resets it.
  std::chrono::milliseconds accept_retry_min{100};
  std::chrono::milliseconds accept_retry_max{1000};
  std::chrono::milliseconds log_interval{10000};  // repeated warnings: one per interval
};

// A warning that may repeat quickly, logged through a LogLimiter (at most
// once per interval, the next line saying how many were left out); with -d
// and `verbose_all`, every line.
class LogThrottle {
 public:
  explicit LogThrottle(Duration interval) : limiter_(interval) {}
  // True if it was logged.
  bool log(const std::string& line, bool verbose_all = false, TimePoint now = Clock::now());
  std::uint64_t suppressed() const { return limiter_.suppressed(""); }

 private:
  LogLimiter limiter_;
};

class UnixServer {
 public:
  using Limits = UnixServerLimits;

  // Called with one complete message (TLV header included).
  using MessageHandler = std::function<void(ClientId, std::span<const std::uint8_t>)>;
  // The record now stored under (type, source), or nullptr.
  using RecordLookup = std::function<RecordPtr(std::uint8_t type, const Mac& source)>;

  struct Stats {
    std::uint64_t accepted = 0, accept_failures = 0, refused = 0, evicted = 0;
    std::uint64_t read_timeouts = 0, write_stalls = 0, reply_timeouts = 0;
    std::uint64_t listeners_refused = 0, listeners_dropped = 0;
    std::uint64_t replies_abandoned = 0, replies_refused = 0;  // for max_reply_bytes
  };

  UnixServer(asio::io_context& io, std::string path, MessageHandler handler, Limits limits);
  UnixServer(asio::io_context& io, std::string path, MessageHandler handler)
      : UnixServer(io, std::move(path), std::move(handler), Limits{}) {}
  ~UnixServer();

  bool open(std::string& error);
  // Where an answer finds the current version of a record replaced since
  // its request (without one, such a record is left out).
  void set_lookup(RecordLookup lookup) { lookup_ = std::move(lookup); }
  void close();

  // Replies; each ends the client's connection once written.
  void reply(ClientId client, std::vector<std::uint8_t> bytes);
  void reply_records(ClientId client, Snapshot records, std::uint16_t tx_id);
  void finish(ClientId client);  // close without a reply
  // Keeps the client as an event listener.
  void make_listener(ClientId client);
  void notify_listeners(const std::vector<std::uint8_t>& event);
  // The client waits for an answer that comes later (a forwarded request).
  void keep_waiting(ClientId client);

  std::size_t client_count() const { return clients_.size(); }
  std::size_t listener_count() const;
  // Bytes the server holds for its clients' answers and events (not the
  // records themselves, which are shared with the store).
  std::size_t buffered_bytes() const;
  // What the answers being written hold, as max_reply_bytes counts it.
  std::size_t reply_bytes() const { return reply_bytes_; }
  // What an answer of these records counts against max_reply_bytes.
  static std::size_t reply_cost(const Snapshot& records);
  const Stats& stats() const { return stats_; }

 private:
  class Client;
  friend class Client;
  void accept();
  void on_accept_error(const asio::error_code& ec);
  void remove(ClientId id);
  bool evict_one();
  // Makes room for an answer of `cost` for `client` by abandoning idle
  // answers, least recently moving first; false when there is not enough.
  bool make_reply_room(std::size_t cost, ClientId client);

  asio::io_context& io_;
  std::string path_;
  MessageHandler handler_;
  Limits limits_;
  asio::local::stream_protocol::acceptor acceptor_;
  asio::steady_timer accept_timer_;
  std::chrono::milliseconds accept_delay_{0};
  std::map<ClientId, std::shared_ptr<Client>> clients_;
  std::set<ClientId> listeners_;  // the clients in clients_ that are event listeners
  ClientId next_id_ = 1;
  bool bound_ = false;
  Stats stats_;
  std::size_t reply_bytes_ = 0;
  RecordLookup lookup_;
  LogThrottle accept_log_, refuse_log_, listener_log_, stall_log_;
};

}  // namespace alfred::ipc
