#pragma once
// The daemon's unix socket. Every client is served asynchronously: one that
// connects and stays silent, writes slowly, or registers for events and never
// reads holds only its own small buffers and never delays anyone else.
#include <asio.hpp>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/route.hpp"
#include "store/record.hpp"

namespace alfred::ipc {

struct UnixServerLimits {
  // When full, the client that has been silent longest is dropped to make
  // room, so clients that connect and never write cannot lock others out.
  std::size_t max_clients = 512;
  std::chrono::milliseconds message_timeout{10000};  // to finish writing a message
  std::size_t max_listener_backlog = 64 * 1024;      // unread event bytes
  // Listeners have no timeout; their own cap keeps the client table open
  // for everyone else. Registrations beyond it are closed at once.
  std::size_t max_listeners = 64;
};

class UnixServer {
 public:
  using Limits = UnixServerLimits;

  // Called with one complete message (TLV header included).
  using MessageHandler = std::function<void(ClientId, std::span<const std::uint8_t>)>;

  UnixServer(asio::io_context& io, std::string path, MessageHandler handler, Limits limits);
  UnixServer(asio::io_context& io, std::string path, MessageHandler handler)
      : UnixServer(io, std::move(path), std::move(handler), Limits{}) {}
  ~UnixServer();

  bool open(std::string& error);
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

 private:
  class Client;
  friend class Client;
  void accept();
  void remove(ClientId id);
  bool evict_oldest_silent();

  asio::io_context& io_;
  std::string path_;
  MessageHandler handler_;
  Limits limits_;
  asio::local::stream_protocol::acceptor acceptor_;
  std::map<ClientId, std::shared_ptr<Client>> clients_;
  ClientId next_id_ = 1;
  bool bound_ = false;
};

}  // namespace alfred::ipc
