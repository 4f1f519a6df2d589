#include "ipc/unix_server.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>

#include "ipc/message_framer.hpp"
#include "net/log.hpp"
#include "wire/packet.hpp"

namespace alfred::ipc {
namespace {

// An answer is written a batch at a time as the socket drains. Small records
// are copied into the client's buffer, at most kCopyBatch bytes per batch;
// larger payloads are written straight from the record, which the snapshot
// keeps alive. So a client whose answer is stalled holds a few KiB however
// large the data set.
constexpr std::size_t kCopyBatch = 16 * 1024;
constexpr std::size_t kInPlaceFrom = 512;
constexpr std::size_t kBatchBytes = 64 * 1024;
constexpr std::size_t kMaxPieces = 16;
constexpr std::size_t kReadChunk = 2048;

void put_be16(std::uint8_t* p, std::size_t v) {
  p[0] = static_cast<std::uint8_t>((v >> 8) & 0xff);
  p[1] = static_cast<std::uint8_t>(v & 0xff);
}

std::string seconds(Duration d) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + " s";
  return std::to_string(ms) + " ms";
}

}  // namespace

bool LogThrottle::log(const std::string& line, bool verbose_all, TimePoint now) {
  if (verbose_all && net::verbose()) {
    net::log_error(line);
    return true;
  }
  auto suffix = limiter_.admit("", now);
  if (!suffix) return false;
  net::log_error(line + *suffix);
  return true;
}

class UnixServer::Client : public std::enable_shared_from_this<UnixServer::Client> {
 public:
  enum class State { Reading, Waiting, Writing, Listener, Closed };

  Client(UnixServer& server, ClientId id, asio::local::stream_protocol::socket sock)
      : server_(server),
        id_(id),
        sock_(std::move(sock)),
        timer_(server.io_),
        last_progress_(Clock::now()),
        read_deadline_(last_progress_ + server.limits_.message_timeout) {}

  void start() {
    asio::error_code ec;
    sock_.non_blocking(true, ec);  // for the synchronous reads in on_read
    arm(read_deadline_);
    read();
  }

  void reply(std::vector<std::uint8_t> bytes) {
    if (!begin_reply()) return;
    out_ = std::move(bytes);
    if (!out_.empty()) pieces_.push_back({nullptr, 0, out_.size()});
    write();
  }

  void reply_records(Snapshot records, std::uint16_t tx_id) {
    if (!begin_reply()) return;
    held_ = reply_cost(records);
    server_.reply_bytes_ += held_;
    records_.clear();
    records_.reserve(records.size());
    for (const auto& r : records) records_.push_back({r, r->type, r->source});
    reply_started_ = Clock::now();
    next_record_ = 0;
    tx_id_ = tx_id;
    seqno_ = 0;
    write();
  }

  void listen() {
    if (state_ == State::Closed) return;
    state_ = State::Listener;
    timer_.cancel();
  }

  void wait() {
    if (state_ == State::Closed) return;
    state_ = State::Waiting;
    timer_.cancel();
  }

  void notify(const std::vector<std::uint8_t>& event) {
    if (state_ != State::Listener) return;
    std::size_t unread = unsent() + event.size();
    if (unread > server_.limits_.max_listener_backlog) {
      ++server_.stats_.listeners_dropped;
      server_.stall_log_.log("event listener " + std::to_string(id_) + " does not read (" +
                                 std::to_string(unread) + " bytes of events unread), closing it",
                             true);
      close();
      return;
    }
    queued_.insert(queued_.end(), event.begin(), event.end());
    write();
  }

  void close() {
    if (state_ == State::Closed) return;
    state_ = State::Closed;
    asio::error_code ec;
    timer_.cancel();
    sock_.shutdown(asio::socket_base::shutdown_both, ec);
    sock_.close(ec);
    // The buffers stay until the object goes: an aborted write may still
    // name them. The records too, but they no longer count: no write is
    // started after this, and the object goes with the aborted one.
    server_.reply_bytes_ -= held_;
    held_ = 0;
    server_.remove(id_);
  }

  State state() const { return state_; }
  TimePoint last_progress() const { return last_progress_; }
  std::size_t held() const { return held_; }
  TimePoint reply_started() const { return reply_started_; }
  ClientId id() const { return id_; }
  std::size_t buffered() const { return out_.size() + queued_.size() + framer_.buffered(); }

 private:
  struct Piece {
    const std::uint8_t* ext = nullptr;  // nullptr: bytes of out_ from `begin`
    std::size_t begin = 0;
    std::size_t size = 0;
  };

  void release_records() {
    records_.clear();
    records_.shrink_to_fit();
    batch_.clear();
    server_.reply_bytes_ -= held_;
    held_ = 0;
  }

  bool begin_reply() {
    // One answer per client; a listener gets events only.
    if (state_ == State::Closed || state_ == State::Writing || state_ == State::Listener)
      return false;
    state_ = State::Writing;
    close_after_ = true;
    TimePoint now = Clock::now();
    last_progress_ = now;
    reply_deadline_ = now + server_.limits_.reply_timeout;
    arm(std::min(now + server_.limits_.write_stall_timeout, reply_deadline_));
    return true;
  }

  void arm(TimePoint when) {
    timer_.expires_at(when);
    auto self = shared_from_this();
    timer_.async_wait([self](const asio::error_code& ec) {
      if (!ec) self->on_timer();
    });
  }

  // Decides from the clock and the state, so a wait that completed just
  // before the state changed does no harm.
  void on_timer() {
    TimePoint now = Clock::now();
    const Limits& l = server_.limits_;
    if (state_ == State::Reading) {
      if (now < read_deadline_) return arm(read_deadline_);
      ++server_.stats_.read_timeouts;
      net::log_verbose("unix client " + std::to_string(id_) + " sent no complete message in " +
                       seconds(l.message_timeout) + ", closing");
      close();
      return;
    }
    if (state_ != State::Writing) return;
    if (now - last_progress_ >= l.write_stall_timeout) {
      ++server_.stats_.write_stalls;
      server_.stall_log_.log("unix client " + std::to_string(id_) + " stopped reading its answer (" +
                                 std::to_string(sent_) + " bytes sent, then nothing for " +
                                 seconds(l.write_stall_timeout) + "), closing",
                             true);
      close();
      return;
    }
    if (now >= reply_deadline_) {
      ++server_.stats_.reply_timeouts;
      server_.stall_log_.log("unix client " + std::to_string(id_) + " did not read its answer in " +
                                 seconds(l.reply_timeout) + " (" + std::to_string(sent_) +
                                 " bytes sent), closing",
                             true);
      close();
      return;
    }
    arm(std::min(last_progress_ + l.write_stall_timeout, reply_deadline_));
  }

  void read() {
    auto self = shared_from_this();
    sock_.async_read_some(asio::buffer(rx_), [self](const asio::error_code& ec, std::size_t n) {
      self->on_read(ec, n);
    });
  }

  void on_read(asio::error_code ec, std::size_t n) {
    for (;;) {
      if (state_ == State::Closed) return;
      if (ec) {
        // EOF or error: a client that stops before its message is complete
        // is dropped; a listener or a waiting client that hangs up is done.
        // One that only shut down its sending side still gets its answer.
        if (state_ != State::Writing) close();
        return;
      }
      if (state_ == State::Listener) {
        net::log_verbose("event listener " + std::to_string(id_) + " wrote to its socket, closing");
        close();
        return;
      }
      if (state_ != State::Reading) {
        read();  // ignore anything sent after the message, but notice hang-ups
        return;
      }
      last_progress_ = Clock::now();
      if (framer_.feed(std::span<const std::uint8_t>(rx_.data(), n))) {
        std::vector<std::uint8_t> msg(framer_.message().begin(), framer_.message().end());
        framer_ = MessageFramer{};
        state_ = State::Waiting;  // until the handler says otherwise
        timer_.cancel();
        auto self = shared_from_this();
        server_.handler_(id_, msg);
        if (state_ != State::Closed) read();
        return;
      }
      // The rest of the message may be here already: take it now rather than
      // after a turn of the event loop, so that a set is applied before a
      // request that connected after it was written (as upstream, which
      // serves one client at a time, always does).
      n = sock_.read_some(asio::buffer(rx_), ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) {
        read();
        return;
      }
    }
  }

  std::size_t unsent() const {
    std::size_t n = queued_.size();
    for (std::size_t i = piece_; i < pieces_.size(); ++i) n += pieces_[i].size;
    return n - (piece_ < pieces_.size() ? piece_done_ : 0);
  }

  void add_inline(std::size_t begin, std::size_t size) {
    if (!pieces_.empty() && !pieces_.back().ext &&
        pieces_.back().begin + pieces_.back().size == begin) {
      pieces_.back().size += size;
      return;
    }
    pieces_.push_back({nullptr, begin, size});
  }

  // Sets up the next bytes to write once the previous ones are all out:
  // queued events for a listener, the next record packets of an answer.
  bool next_batch() {
    out_.clear();
    pieces_.clear();
    piece_ = piece_done_ = 0;
    if (state_ == State::Listener) {
      if (queued_.empty()) return false;
      out_.swap(queued_);
      pieces_.push_back({nullptr, 0, out_.size()});
      return true;
    }
    std::size_t bytes = 0;
    batch_.clear();
    while (next_record_ < records_.size() && out_.size() < kCopyBatch && bytes < kBatchBytes &&
           pieces_.size() + 2 <= kMaxPieces) {
      const Ref& ref = records_[next_record_++];
      RecordPtr held = ref.record.lock();
      // Replaced since the request: its current version, as a request made
      // now would get; dropped: left out.
      if (!held && server_.lookup_) held = server_.lookup_(ref.type, ref.source);
      if (!held) continue;
      const Record& r = *held;
      const bool in_place = r.data.size() >= kInPlaceFrom;
      std::size_t start = wire::encode_push_header(out_, tx_id_, seqno_++);
      wire::append_record(out_, r.source, r.type, r.version,
                          in_place ? std::span<const std::uint8_t>() : std::span(r.data));
      std::size_t packet = out_.size() - start;
      if (in_place) {
        put_be16(out_.data() + out_.size() - 2, r.data.size());  // the record's length
        packet += r.data.size();
      }
      put_be16(out_.data() + start + 2, packet - wire::kTlvSize);
      add_inline(start, out_.size() - start);
      if (in_place) {
        pieces_.push_back({r.data.data(), 0, r.data.size()});
        batch_.push_back(std::move(held));  // written from, until the batch is out
      }
      bytes += packet;
    }
    if (pieces_.empty()) {
      // Every byte of the answer is written; nothing names the records now.
      release_records();
      return false;
    }
    return true;
  }

  void write() {
    if (writing_ || state_ == State::Closed) return;
    if (piece_ == pieces_.size() && !next_batch()) {
      if (close_after_) close();
      return;
    }
    std::array<asio::const_buffer, kMaxPieces> bufs{};
    std::size_t n = 0;
    for (std::size_t i = piece_; i < pieces_.size(); ++i, ++n) {
      const Piece& p = pieces_[i];
      const std::uint8_t* base = p.ext ? p.ext : out_.data() + p.begin;
      std::size_t skip = i == piece_ ? piece_done_ : 0;
      bufs[n] = asio::buffer(base + skip, p.size - skip);
    }
    writing_ = true;
    auto self = shared_from_this();
    sock_.async_write_some(bufs, [self](const asio::error_code& ec, std::size_t written) {
      self->on_written(ec, written);
    });
  }

  void on_written(const asio::error_code& ec, std::size_t written) {
    writing_ = false;
    if (state_ == State::Closed) return;
    if (ec) {
      net::log_verbose("unix client " + std::to_string(id_) + ": " + ec.message() + ", closing");
      close();
      return;
    }
    if (written > 0) last_progress_ = Clock::now();
    sent_ += written;
    while (written > 0 && piece_ < pieces_.size()) {
      std::size_t left = pieces_[piece_].size - piece_done_;
      if (written < left) {
        piece_done_ += written;
        break;
      }
      written -= left;
      ++piece_;
      piece_done_ = 0;
    }
    write();
  }

  UnixServer& server_;
  ClientId id_;
  asio::local::stream_protocol::socket sock_;
  asio::steady_timer timer_;
  State state_ = State::Reading;
  TimePoint last_progress_;  // last byte received (while reading) or written
  TimePoint read_deadline_;
  TimePoint reply_deadline_{};
  std::array<std::uint8_t, kReadChunk> rx_{};
  MessageFramer framer_;
  // What is being written: pieces of out_ and record payloads, in order.
  std::vector<std::uint8_t> out_;
  std::vector<Piece> pieces_;
  std::size_t piece_ = 0;       // first piece not fully written
  std::size_t piece_done_ = 0;  // bytes of it written
  std::vector<std::uint8_t> queued_;  // events that arrived during a write
  std::uint64_t sent_ = 0;
  bool writing_ = false;
  bool close_after_ = false;
  struct Ref {
    std::weak_ptr<const Record> record;
    std::uint8_t type;
    Mac source;
  };
  std::vector<Ref> records_;
  TimePoint reply_started_{};
  Snapshot batch_;        // the records the current batch writes from
  std::size_t held_ = 0;  // what records_ counts against max_reply_bytes
  std::size_t next_record_ = 0;
  std::uint16_t tx_id_ = 0;
  std::uint16_t seqno_ = 0;
};

UnixServer::UnixServer(asio::io_context& io, std::string path, MessageHandler handler,
                       Limits limits)
    : io_(io),
      path_(std::move(path)),
      handler_(std::move(handler)),
      limits_(limits),
      acceptor_(io),
      accept_timer_(io),
      accept_log_(limits.log_interval),
      refuse_log_(limits.log_interval),
      listener_log_(limits.log_interval),
      stall_log_(limits.log_interval) {}

UnixServer::~UnixServer() { close(); }

bool UnixServer::open(std::string& error) {
  ::unlink(path_.c_str());
  asio::error_code ec;
  acceptor_.open(asio::local::stream_protocol(), ec);
  if (ec) {
    error = "can't create unix socket: " + ec.message();
    return false;
  }
  acceptor_.bind(asio::local::stream_protocol::endpoint(path_), ec);
  if (ec) {
    error = "can't bind unix socket: " + ec.message();
    return false;
  }
  bound_ = true;
  acceptor_.listen(64, ec);
  if (ec) {
    error = "can't listen on unix socket: " + ec.message();
    return false;
  }
  accept();
  return true;
}

void UnixServer::close() {
  asio::error_code ec;
  acceptor_.close(ec);
  accept_timer_.cancel();
  auto clients = clients_;
  for (auto& [id, c] : clients) c->close();
  clients_.clear();
  // The socket file stays, as upstream leaves it: clients of a stopped daemon
  // see "Connection refused", which scripts may rely on.
  bound_ = false;
}

void UnixServer::accept() {
  acceptor_.async_accept([this](const asio::error_code& ec,
                                asio::local::stream_protocol::socket sock) {
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
    if (ec) {
      on_accept_error(ec);
      return;
    }
    accept_delay_ = std::chrono::milliseconds(0);
    ++stats_.accepted;
    if (clients_.size() >= limits_.max_clients && !evict_one()) {
      ++stats_.refused;
      refuse_log_.log("too many unix socket clients (" + std::to_string(clients_.size()) + ", " +
                      std::to_string(listener_count()) +
                      " of them event listeners), refusing one");
      asio::error_code ignore;
      sock.close(ignore);
    } else {
      asio::error_code ignore;
      if (limits_.send_buffer > 0)
        sock.set_option(asio::socket_base::send_buffer_size(limits_.send_buffer), ignore);
      ClientId id = next_id_++;
      auto c = std::make_shared<Client>(*this, id, std::move(sock));
      clients_.emplace(id, c);
      c->start();
    }
    accept();
  });
}

void UnixServer::on_accept_error(const asio::error_code& ec) {
  // Out of descriptors or memory: the pending connection stays queued and
  // accepting again at once would fail again at once. Pause, doubling.
  ++stats_.accept_failures;
  accept_delay_ = accept_delay_.count() == 0
                      ? limits_.accept_retry_min
                      : std::min(accept_delay_ * 2, limits_.accept_retry_max);
  accept_log_.log("can't accept unix connection: " + ec.message() + "; retrying in " +
                  seconds(accept_delay_));
  accept_timer_.expires_after(accept_delay_);
  accept_timer_.async_wait([this](const asio::error_code& e) {
    if (e || !acceptor_.is_open()) return;
    accept();
  });
}

void UnixServer::remove(ClientId id) {
  clients_.erase(id);
  listeners_.erase(id);
}

bool UnixServer::evict_one() {
  // In this order: an answer whose reader has not moved for reply_evict_idle
  // (it stopped reading), then the client sending its message longest (a
  // silent one: an honest client sends its message at once), then the
  // answer that moved least recently. Least recent progress alone cut off a
  // reader in mid-answer when a flood of silent clients arrived while the
  // loop was busy accepting them: its answer had not moved for a few tens
  // of milliseconds, and every silent client was newer (CI, ASan, the
  // hostile lab's phase 3: 5 of 40 records).
  TimePoint now = Clock::now();
  std::shared_ptr<Client> stalled, silent, writer;
  auto older = [](const std::shared_ptr<Client>& a, const std::shared_ptr<Client>& b) {
    return !b || a->last_progress() < b->last_progress();
  };
  for (auto& [id, c] : clients_) {
    auto s = c->state();
    if (s == Client::State::Reading) {
      if (older(c, silent)) silent = c;
    } else if (s == Client::State::Writing) {
      if (now - c->last_progress() >= limits_.reply_evict_idle) {
        if (older(c, stalled)) stalled = c;
      } else if (older(c, writer)) {
        writer = c;
      }
    }
  }
  std::shared_ptr<Client> victim = stalled ? stalled : silent ? silent : writer;
  if (!victim) return false;
  ++stats_.evicted;
  auto idle = std::chrono::duration_cast<std::chrono::milliseconds>(now - victim->last_progress());
  net::log_verbose(std::string("unix client table full: dropping a client that ") +
                   (victim->state() == Client::State::Reading ? "is sending its message"
                                                              : "is reading its answer") +
                   ", idle for " + std::to_string(idle.count()) + " ms");
  victim->close();
  return true;
}

void UnixServer::reply(ClientId client, std::vector<std::uint8_t> bytes) {
  if (auto it = clients_.find(client); it != clients_.end()) {
    auto c = it->second;  // the client may leave the map while it runs
    c->reply(std::move(bytes));
  }
}

std::size_t UnixServer::reply_cost(const Snapshot& records) {
  return records.size() * (sizeof(std::weak_ptr<const Record>) + 8);  // + type and source
}

bool UnixServer::make_reply_room(std::size_t cost, ClientId client) {
  while (reply_bytes_ + cost > limits_.max_reply_bytes) {
    TimePoint now = Clock::now();
    std::shared_ptr<Client> victim;  // idle: the least recently moving
    std::shared_ptr<Client> oldest;  // running long: the longest running
    for (auto& [id, c] : clients_) {
      if (id == client || c->held() == 0) continue;
      if (now - c->last_progress() >= limits_.reply_evict_idle) {
        if (!victim || c->last_progress() < victim->last_progress()) victim = c;
      } else if (now - c->reply_started() >= limits_.reply_evict_age) {
        if (!oldest || c->reply_started() < oldest->reply_started()) oldest = c;
      }
    }
    if (!victim) victim = oldest;
    // Alone, an answer fits: the bound holds the largest store's list.
    if (!victim) return reply_bytes_ == 0;
    ++stats_.replies_abandoned;
    auto idle = std::chrono::duration_cast<std::chrono::milliseconds>(now - victim->last_progress());
    auto running = std::chrono::duration_cast<std::chrono::milliseconds>(now - victim->reply_started());
    stall_log_.log("unix answers hold " + std::to_string(reply_bytes_) + " bytes of record lists (limit " +
                       std::to_string(limits_.max_reply_bytes) + "): abandoning the answer to client " +
                       std::to_string(victim->id()) + ", running for " +
                       std::to_string(running.count()) + " ms, idle for " +
                       std::to_string(idle.count()) + " ms",
                   true);
    victim->close();
  }
  return true;
}

void UnixServer::reply_records(ClientId client, Snapshot records, std::uint16_t tx_id) {
  auto it = clients_.find(client);
  if (it == clients_.end()) return;
  auto c = it->second;
  if (!make_reply_room(reply_cost(records), client)) {
    ++stats_.replies_refused;
    stall_log_.log("unix answers hold " + std::to_string(reply_bytes_) +
                       " bytes of record lists, all being read: refusing an answer of " +
                       std::to_string(records.size()) + " records to client " + std::to_string(client),
                   true);
    c->reply(wire::encode(wire::StatusError::failed(tx_id)));
    return;
  }
  c->reply_records(std::move(records), tx_id);
}

void UnixServer::finish(ClientId client) {
  if (auto it = clients_.find(client); it != clients_.end()) {
    auto keep = it->second;
    keep->close();
  }
}

void UnixServer::make_listener(ClientId client) {
  auto it = clients_.find(client);
  if (it == clients_.end()) return;
  auto c = it->second;
  if (listener_count() >= limits_.max_listeners) {
    ++stats_.listeners_refused;
    listener_log_.log("too many event listeners (" + std::to_string(limits_.max_listeners) +
                      "), refusing one");
    c->close();
    return;
  }
  c->listen();
  listeners_.insert(client);
}

void UnixServer::keep_waiting(ClientId client) {
  if (auto it = clients_.find(client); it != clients_.end()) it->second->wait();
}

void UnixServer::notify_listeners(const std::vector<std::uint8_t>& event) {
  // Every changed record is an event: walk the listeners, not all clients.
  std::vector<std::shared_ptr<Client>> listeners;
  listeners.reserve(listeners_.size());
  for (ClientId id : listeners_)
    if (auto it = clients_.find(id); it != clients_.end()) listeners.push_back(it->second);
  for (auto& c : listeners) c->notify(event);
}

std::size_t UnixServer::listener_count() const { return listeners_.size(); }

std::size_t UnixServer::buffered_bytes() const {
  std::size_t n = 0;
  for (const auto& [id, c] : clients_) n += c->buffered();
  return n;
}

}  // namespace alfred::ipc
