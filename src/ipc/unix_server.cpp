#include "ipc/unix_server.hpp"

#include <unistd.h>

#include "ipc/message_framer.hpp"
#include "net/log.hpp"
#include "wire/packet.hpp"

namespace alfred::ipc {

class UnixServer::Client : public std::enable_shared_from_this<UnixServer::Client> {
 public:
  enum class State { Reading, Waiting, Writing, Listener, Closed };

  Client(UnixServer& server, ClientId id, asio::local::stream_protocol::socket sock)
      : server_(server), id_(id), sock_(std::move(sock)), timer_(server.io_) {}

  void start() {
    arm_timeout();
    read();
  }

  void reply(std::vector<std::uint8_t> bytes) {
    if (state_ == State::Closed) return;
    state_ = State::Writing;
    timer_.cancel();
    out_.insert(out_.end(), bytes.begin(), bytes.end());
    close_after_ = true;
    write();
  }

  void reply_records(Snapshot records, std::uint16_t tx_id) {
    if (state_ == State::Closed) return;
    state_ = State::Writing;
    timer_.cancel();
    records_ = std::move(records);
    next_record_ = 0;
    tx_id_ = tx_id;
    seqno_ = 0;
    close_after_ = true;
    write();
  }

  void listen() {
    state_ = State::Listener;
    timer_.cancel();
  }

  void wait() {
    state_ = State::Waiting;
    timer_.cancel();
  }

  void notify(const std::vector<std::uint8_t>& event) {
    if (state_ != State::Listener) return;
    if (out_.size() + event.size() > server_.limits_.max_listener_backlog) {
      net::log_error("event listener " + std::to_string(id_) + " does not read, closing it");
      close();
      return;
    }
    out_.insert(out_.end(), event.begin(), event.end());
    write();
  }

  void close() {
    if (state_ == State::Closed) return;
    state_ = State::Closed;
    asio::error_code ec;
    timer_.cancel();
    sock_.shutdown(asio::socket_base::shutdown_both, ec);
    sock_.close(ec);
    server_.remove(id_);
  }

  State state() const { return state_; }

 private:
  void arm_timeout() {
    timer_.expires_after(server_.limits_.message_timeout);
    auto self = shared_from_this();
    timer_.async_wait([self](const asio::error_code& ec) {
      if (ec || self->state_ != State::Reading) return;
      net::log_verbose("unix client " + std::to_string(self->id_) +
                       " sent no complete message in time, closing");
      self->close();
    });
  }

  void read() {
    auto self = shared_from_this();
    sock_.async_read_some(asio::buffer(rx_), [self](const asio::error_code& ec, std::size_t n) {
      self->on_read(ec, n);
    });
  }

  void on_read(const asio::error_code& ec, std::size_t n) {
    if (state_ == State::Closed) return;
    if (ec) {
      // EOF or error: a client that stops before its message is complete is
      // dropped; a listener or a waiting client that hangs up is done.
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
    if (framer_.feed(std::span<const std::uint8_t>(rx_.data(), n))) {
      std::vector<std::uint8_t> msg(framer_.message().begin(), framer_.message().end());
      framer_ = MessageFramer{};
      state_ = State::Waiting;  // until the handler says otherwise
      auto self = shared_from_this();
      server_.handler_(id_, msg);
      if (state_ != State::Closed) read();
      return;
    }
    read();
  }

  // Fills `out_` with the next record packets, a bounded amount at a time.
  void refill() {
    while (next_record_ < records_.size() && out_.size() < 64 * 1024) {
      const Record& r = *records_[next_record_++];
      std::size_t start = wire::encode_push_header(out_, tx_id_, seqno_++);
      wire::append_record(out_, r.source, r.type, r.version, r.data);
      wire::finish_tlv(out_, start);
    }
    if (next_record_ >= records_.size()) records_.clear();
  }

  void write() {
    if (writing_ || state_ == State::Closed) return;
    if (out_.empty()) refill();
    if (out_.empty()) {
      if (close_after_) close();
      return;
    }
    writing_ = true;
    sending_.swap(out_);
    auto self = shared_from_this();
    asio::async_write(sock_, asio::buffer(sending_),
                      [self](const asio::error_code& ec, std::size_t) {
                        self->writing_ = false;
                        self->sending_.clear();
                        if (ec) {
                          self->close();
                          return;
                        }
                        self->write();
                      });
  }

  UnixServer& server_;
  ClientId id_;
  asio::local::stream_protocol::socket sock_;
  asio::steady_timer timer_;
  State state_ = State::Reading;
  std::array<std::uint8_t, 4096> rx_{};
  MessageFramer framer_;
  std::vector<std::uint8_t> out_;
  std::vector<std::uint8_t> sending_;
  bool writing_ = false;
  bool close_after_ = false;
  Snapshot records_;
  std::size_t next_record_ = 0;
  std::uint16_t tx_id_ = 0;
  std::uint16_t seqno_ = 0;
};

UnixServer::UnixServer(asio::io_context& io, std::string path, MessageHandler handler,
                       Limits limits)
    : io_(io), path_(std::move(path)), handler_(std::move(handler)), limits_(limits), acceptor_(io) {}

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
    if (ec == asio::error::operation_aborted) return;
    if (!ec) {
      if (clients_.size() >= limits_.max_clients && !evict_oldest_silent()) {
        net::log_error("too many unix socket clients (" + std::to_string(clients_.size()) +
                       "), refusing one");
        asio::error_code ignore;
        sock.close(ignore);
      } else {
        ClientId id = next_id_++;
        auto c = std::make_shared<Client>(*this, id, std::move(sock));
        clients_.emplace(id, c);
        c->start();
      }
    } else {
      net::log_error("can't accept unix connection: " + ec.message());
    }
    if (acceptor_.is_open()) accept();
  });
}

void UnixServer::remove(ClientId id) { clients_.erase(id); }

bool UnixServer::evict_oldest_silent() {
  // Ids grow with time, so the first one still reading is the oldest.
  for (auto& [id, c] : clients_) {
    if (c->state() != Client::State::Reading) continue;
    net::log_verbose("unix client " + std::to_string(id) +
                     " evicted: client table full and it sent nothing yet");
    auto keep = c;
    keep->close();
    return true;
  }
  return false;
}

void UnixServer::reply(ClientId client, std::vector<std::uint8_t> bytes) {
  if (auto it = clients_.find(client); it != clients_.end()) {
    auto c = it->second;  // the client may leave the map while it runs
    c->reply(std::move(bytes));
  }
}

void UnixServer::reply_records(ClientId client, Snapshot records, std::uint16_t tx_id) {
  if (auto it = clients_.find(client); it != clients_.end()) {
    auto c = it->second;
    c->reply_records(std::move(records), tx_id);
  }
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
    net::log_error("too many event listeners (" + std::to_string(limits_.max_listeners) +
                   "), refusing one");
    c->close();
    return;
  }
  c->listen();
}

void UnixServer::keep_waiting(ClientId client) {
  if (auto it = clients_.find(client); it != clients_.end()) it->second->wait();
}

void UnixServer::notify_listeners(const std::vector<std::uint8_t>& event) {
  std::vector<std::shared_ptr<Client>> listeners;
  for (auto& [id, c] : clients_)
    if (c->state() == Client::State::Listener) listeners.push_back(c);
  for (auto& c : listeners) c->notify(event);
}

std::size_t UnixServer::listener_count() const {
  std::size_t n = 0;
  for (const auto& [id, c] : clients_)
    if (c->state() == Client::State::Listener) ++n;
  return n;
}

}  // namespace alfred::ipc
