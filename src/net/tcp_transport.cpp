#include "net/tcp_transport.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <linux/sockios.h>
#include <sys/capability.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>

#include "link/session_responder.hpp"
#include "net/log.hpp"
#include "sys/privileges.hpp"
#include "wire/session_frames.hpp"
#include "wire/stream_reader.hpp"

namespace alfred::net {
namespace {

asio::ip::address to_asio(const PeerAddress& a, unsigned scope) {
  if (a.v4) return asio::ip::address_v4({a.ip[0], a.ip[1], a.ip[2], a.ip[3]});
  asio::ip::address_v6::bytes_type b;
  std::copy(a.ip.begin(), a.ip.end(), b.begin());
  return asio::ip::address_v6(b, scope);
}

PeerAddress from_asio(const asio::ip::address& a) {
  PeerAddress p;
  if (a.is_v4()) {
    p.v4 = true;
    auto b = a.to_v4().to_bytes();
    std::copy(b.begin(), b.end(), p.ip.begin());
  } else {
    auto v6 = a.to_v6();
    if (v6.is_v4_mapped()) return from_asio(asio::ip::make_address_v4(asio::ip::v4_mapped, v6));
    auto b = v6.to_bytes();
    std::copy(b.begin(), b.end(), p.ip.begin());
  }
  return p;
}

bool bind_to_device(int fd, const std::string& name) {
  sys::CapabilityRaise raw(CAP_NET_RAW);
  return ::setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, name.c_str(),
                      static_cast<socklen_t>(name.size() + 1)) == 0;
}

// Our streams carry small transactions and acknowledgements: a few segments
// in flight, nothing behind them to trigger a fast retransmit. A segment lost
// on a lossy mesh link is then resent only on the retransmission timer, which
// Linux doubles after every loss: three losses of one segment cost 1.4 s at a
// 200 ms RTO, and that tail is what a change waits for. Linear timeouts keep
// the timer at the RTO for the first six retransmissions of a thin stream
// (fewer than four segments out); bulk transfers are not thin and keep TCP's
// usual backoff, so a congested link is not hammered.
void tune_stream(asio::ip::tcp::socket& sock) {
  asio::error_code ignore;
  sock.set_option(asio::ip::tcp::no_delay(true), ignore);
  int on = 1;
  ::setsockopt(sock.native_handle(), IPPROTO_TCP, TCP_THIN_LINEAR_TIMEOUTS, &on, sizeof on);
}

std::string describe(const std::string& iface, const PeerAddress& peer) {
  return to_string(peer) + "%" + iface;
}

std::uint16_t be16(const std::uint8_t* p) { return static_cast<std::uint16_t>(p[0] << 8 | p[1]); }

}  // namespace

// A session we open to a peer: the sans-I/O link and the connection it
// currently runs on. The link's requests are carried out here.
struct TcpTransport::Peer final : link::SessionEvents {
  Peer(TcpTransport& t, Route r, std::uint32_t seed)
      : t(t), to(std::move(r)), link(*this, t.limits_.session, seed) {}

  void open_connection() override { t.open_session(*this); }
  void close_connection(std::string_view why) override;
  void wake() override;
  void push_by_udp(wire::PushEncoder tx) override { t.cb_.push_by_udp(to, std::move(tx)); }
  void push_by_legacy(wire::PushEncoder tx) override { t.push(to, std::move(tx)); }
  void request_by_udp(const wire::Request& r) override { t.cb_.request_by_udp(to, r); }
  void request_by_legacy(const wire::Request& r) override { t.request(to, r); }
  void learned(bool speaks_sessions) override {
    PeerKey key{to.iface, to.addr};
    if (speaks_sessions) {
      ++t.stats_.sessions_up;
      t.legacy_until_.erase(key);
    } else {
      t.mark_legacy(key);
    }
  }
  bool logging() const override { return verbose(); }
  void log(std::string_view line) override {
    if (!verbose()) return;
    if (conn_id)
      log_verbose("tcp " + std::to_string(conn_id) + ": " + std::string(line));
    else
      log_verbose("tcp session " + describe(to.iface, to.addr) + ": " + std::string(line));
  }

  TcpTransport& t;
  Route to;
  link::SessionLink link;
  std::weak_ptr<Connection> conn;
  ConnectionId conn_id = 0;
};

// One TCP connection, accepted or opened by us. Reads are always running, so
// a peer's close or reset is noticed at once; writes pull packets from the
// queued transaction only when the previous one has left.
class TcpTransport::Connection : public std::enable_shared_from_this<TcpTransport::Connection> {
 public:
  // Session: ours to a peer, long-lived (see Peer). Inbound becomes a
  // session when its first packet is a hello.
  enum class Kind { Inbound, Push, Request, Session };

  Connection(TcpTransport& t, ConnectionId id, Kind kind, std::string iface, PeerAddress peer,
             Mac mac, asio::ip::tcp::socket sock)
      : t_(t),
        id_(id),
        kind_(kind),
        iface_(std::move(iface)),
        peer_(peer),
        mac_(mac),
        sock_(std::move(sock)),
        opened_(Clock::now()),
        last_activity_(opened_),
        responder_(t.limits_.session) {
    connecting_ = kind != Kind::Inbound;
  }

  ConnectionId id() const { return id_; }
  Kind kind() const { return kind_; }
  const std::string& iface() const { return iface_; }
  const PeerAddress& peer() const { return peer_; }
  const Mac& mac() const { return mac_; }
  bool closed() const { return closed_; }
  bool streaming() const { return !connecting_ && !closed_; }
  bool session() const { return kind_ == Kind::Session || responder_.active(); }
  // Has a deadline that the idle sweep would keep late: a connect, a packet
  // half read, a write, something still to write.
  bool busy() const {
    return !closed_ && (connecting_ || writing_ || reader_.mid_packet() || job_ || !out_.empty() ||
                        !replies_.empty());
  }
  // How long an inbound connection has gone unused: a session since its
  // opener's last completed transaction, any other since it opened (it
  // carries one transaction or one request, the 2016 way, and is done). A
  // packet half read is never "unused": a transfer is under way.
  std::optional<Duration> inbound_unused(TimePoint now) const {
    if (closed_ || kind_ != Kind::Inbound || reader_.mid_packet()) return std::nullopt;
    return responder_.active() ? responder_.unused_for(now) : now - opened_;
  }

  // --- outbound
  void connect(const asio::ip::tcp::endpoint& to, const PeerAddress& own, unsigned scope) {
    connect_deadline_ = Clock::now() + t_.limits_.connect_timeout;
    asio::error_code ec;
    sock_.open(to.protocol(), ec);
    if (ec || !bind_to_device(sock_.native_handle(), iface_)) {
      fail("can't open socket: " + (ec ? ec.message() : std::string(std::strerror(errno))));
      return;
    }
    // The peer learns our MAC from the source address; make it our own.
    sock_.bind(asio::ip::tcp::endpoint(to_asio(own, scope), 0), ec);
    if (ec) {
      fail("can't bind: " + ec.message());
      return;
    }
    auto self = shared_from_this();
    sock_.async_connect(to, [self](const asio::error_code& ec) {
      if (self->closed_) return;
      self->connecting_ = false;
      if (ec) {
        self->fail("connect: " + ec.message());
        return;
      }
      ++self->t_.stats_.connected;
      self->ever_connected_ = true;
      self->t_.peer_answered(self->iface_, self->peer_);
      self->last_activity_ = Clock::now();
      log_verbose("tcp " + std::to_string(self->id_) + ": connected to " +
                  describe(self->iface_, self->peer_));
      tune_stream(self->sock_);
      // pump() writes at once where it can; a blocking socket would stall
      // the whole daemon on a peer that does not read.
      asio::error_code nb;
      self->sock_.non_blocking(true, nb);
      if (nb) {
        self->fail("can't make the socket non-blocking: " + nb.message());
        return;
      }
      self->read();
      if (self->kind_ == Kind::Session) {
        if (Peer* p = self->t_.session_peer(self->iface_, self->peer_, self->id_))
          p->link.connected(Clock::now(), self->t_.cb_.is_primary());
      }
      self->pump();
    });
  }

  // An answer on an inbound stream. One is sent at a time; answers to
  // requests pipelined behind it wait, up to a few, in order.
  bool send_reply(wire::PushEncoder tx) {
    if (closed_) return false;
    if (!job_) {
      // One answer per stream, as requesters expect, unless it is a session.
      send_transaction(std::move(tx), !responder_.active());
      return true;
    }
    if (replies_.size() >= t_.limits_.max_queued_replies) {
      if (auto suffix = t_.error_log_.admit("pipelined", Clock::now()))
        log_error("tcp " + std::to_string(id_) + " from " + describe(iface_, peer_) +
                  ": more than " + std::to_string(t_.limits_.max_queued_replies) +
                  " requests waiting, closing" + *suffix);
      close("too many pipelined requests");
      return false;
    }
    replies_.push_back(std::move(tx));
    return true;
  }

  void send_transaction(wire::PushEncoder tx, bool finish_after) {
    all_sent_ = job_done_ = false;
    original_ = tx.restarted();
    job_ = std::move(tx);
    finish_after_ = finish_after;
    if (!connecting_) pump();
  }

  void send_request(const wire::Request& req) {
    request_ = req;
    out_ = wire::encode(req);
    if (!connecting_) pump();
  }

  // --- inbound
  void start_inbound() {
    tune_stream(sock_);
    asio::error_code ignore;
    // pump() writes at once where it can; see connect().
    sock_.non_blocking(true, ignore);
    if (ignore) {
      close("can't make the socket non-blocking: " + ignore.message());
      return;
    }
    read();
  }

  // Closes without falling back (a peer misbehaved, or we are shutting down).
  // `abort`: a reset, not a close. What the kernel still holds to send is
  // dropped: a connection given up on (a dead link, an error) must not
  // deliver its old transactions minutes later, when the link is back,
  // after newer ones went on the next session (which resends what this
  // one had not had acknowledged).
  void close(const std::string& why, bool abort = false) {
    if (closed_) return;
    closed_ = true;
    // Computed before the socket goes: how a session's connection ended.
    link::CloseCause cause = !ever_connected_ ? (timed_out_ ? link::CloseCause::TimedOut
                                                            : link::CloseCause::Refused)
                             : peer_done_     ? link::CloseCause::Closed
                                              : link::CloseCause::Failed;
    asio::error_code ec;
    if (abort) sock_.set_option(asio::socket_base::linger(true, 0), ec);
    else sock_.shutdown(asio::socket_base::shutdown_both, ec);
    sock_.close(ec);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - opened_);
    log_verbose("tcp " + std::to_string(id_) + ": closed (" + why + ") " +
                describe(iface_, peer_) + ", " + std::to_string(bytes_in_) + " bytes in, " +
                std::to_string(bytes_out_) + " bytes out, " + std::to_string(ms.count()) + " ms");
    t_.forget(id_);
    if (kind_ == Kind::Session && !quiet_) t_.session_ended(iface_, peer_, id_, cause, why);
  }

  // Closed because the session asked for it: it knows, so nothing is reported.
  void close_quietly(const std::string& why, bool abort = false) {
    quiet_ = true;
    close(why, abort);
  }

  // Packets (and frames) to write may be waiting.
  void kick() { pump(); }

  // Ends the connection; unless what it had to send was delivered, the same
  // goes by UDP and the peer is taken to speak no TCP for a while.
  void fail(const std::string& why, bool timed_out = false) {
    if (closed_) return;
    ++t_.stats_.failed;
    auto self = shared_from_this();
    timed_out_ = timed_out;
    bool push_undelivered = kind_ == Kind::Push && original_ && !job_done_;
    bool request_unanswered = kind_ == Kind::Request && request_ && bytes_in_ == 0;
    close(why, /*abort=*/ever_connected_);
    if (push_undelivered || request_unanswered) {
      ++t_.stats_.fallbacks;
      t_.peer_failed(iface_, peer_, why, timed_out);
      Route r{iface_, peer_, mac_, 0};
      log_verbose("tcp " + std::to_string(id_) + ": falling back to UDP for " +
                  describe(iface_, peer_));
      if (push_undelivered) t_.cb_.push_by_udp(r, original_->restarted());
      if (request_unanswered) t_.cb_.request_by_udp(r, *request_);
    }
  }

  // Called by the sweep timer.
  void check(TimePoint now) {
    if (closed_) return;
    if (connecting_) {
      if (now >= connect_deadline_) fail("no answer within the connect timeout", true);
      return;
    }
    if (reader_.mid_packet() && now - partial_since_ >= t_.limits_.partial_timeout) {
      close("packet started " + std::to_string(reader_.buffered()) + " bytes ago never finished");
      return;
    }
    if (writing_ && now - last_write_progress_ >= t_.limits_.stall_timeout) {
      // The peer took the connection, so it speaks TCP; it or the link is
      // overloaded. Resending megabytes by UDP would only add to that, so
      // the next period simply tries TCP again.
      ++t_.stats_.failed;
      close("peer stopped reading");
      return;
    }
    if (kind_ == Kind::Session) {
      // Its link keeps the session's time. But data that TCP has retransmitted
      // four times in a row unanswered (3 s and more at the minimum RTO), with
      // nothing acknowledged for 5 s, means the link is down; TCP would wait out its doubling backoff (up
      // to two minutes) after the link is back. A new connection starts
      // over: its SYNs go 1 and 2 s apart.
      tcp_info info{};
      socklen_t len = sizeof info;
      // Nothing acknowledged for 5 s as well: zero-window probes to a peer
      // that answers them but does not read also grow the backoff, and are
      // the stall timeout's business.
      // Data that never left counts too: while sends fail locally (no route,
      // the interface without carrier, a firewall), TCP keeps it queued,
      // nothing is unacknowledged, and its probe timer doubles all the same.
      auto outstanding = [&] {
        int queued = 0;
        return info.tcpi_unacked > 0 ||
               (::ioctl(sock_.native_handle(), SIOCOUTQ, &queued) == 0 && queued > 0);
      };
      if (::getsockopt(sock_.native_handle(), IPPROTO_TCP, TCP_INFO, &info, &len) == 0 &&
          (info.tcpi_retransmits >= 4 || info.tcpi_backoff >= 4) &&
          info.tcpi_last_ack_recv >= 5000 && outstanding())
        fail("link down? nothing acknowledged for " + std::to_string(info.tcpi_last_ack_recv) +
             " ms, " + std::to_string(info.tcpi_backoff) + " retransmissions");
      return;
    }
    if (kind_ == Kind::Inbound && bytes_in_ == 0 && now - opened_ >= t_.limits_.silent_timeout) {
      // Held open without a byte: a slot taken from peers with data. Such a
      // connection can also be accepted long after its opener went away (a
      // full accept queue leaves it half open while the kernel resends its
      // SYN-ACK), and should not then wait out the idle timeout as well.
      close("sent nothing within " +
            std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                               t_.limits_.silent_timeout)
                               .count()) +
            " s of connecting");
      return;
    }
    if (responder_.active()) {
      switch (responder_.on_timer(now)) {
        case link::SessionResponder::Tick::Dead:
          close("session peer silent for " +
                std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                   t_.limits_.session.dead_after)
                                   .count()) +
                " s");
          return;
        case link::SessionResponder::Tick::Write:
          pump();
          return;
        case link::SessionResponder::Tick::Nothing:
          return;
      }
    }
    if (now - last_activity_ >= t_.limits_.idle_timeout) close("idle");
  }

 private:
  // An answer (or any transaction) is being written or waits to be.
  bool answering() const { return writing_ || job_ || !out_.empty(); }

  void read() {
    auto self = shared_from_this();
    sock_.async_read_some(asio::buffer(rx_), [self](const asio::error_code& ec, std::size_t n) {
      self->on_read(ec, n);
    });
  }

  void on_read(const asio::error_code& ec, std::size_t n) {
    if (closed_) return;
    if (ec) {
      if (ec == asio::error::eof) {
        peer_done_ = true;
        if (reader_.mid_packet()) {
          close("stream ended inside a packet");
        } else if (kind_ == Kind::Inbound && !responder_.active() && answering()) {
          // The peer half-closed after its request; finish the answer first.
        } else if (kind_ == Kind::Push && !job_done_) {
          fail("peer closed before the transaction was sent");
        } else if (kind_ == Kind::Request && bytes_in_ == 0) {
          fail("peer closed without answering");
        } else {
          close("peer closed");
        }
      } else {
        fail("read: " + ec.message());
      }
      return;
    }
    bytes_in_ += n;
    t_.stats_.bytes_in += n;
    last_activity_ = Clock::now();
    bool was_mid = reader_.mid_packet();
    std::size_t completed = 0;
    auto self = shared_from_this();
    Route from{iface_, peer_, mac_, id_};
    bool ok = reader_.feed(std::span<const std::uint8_t>(rx_.data(), n),
                           [&](std::span<const std::uint8_t> packet) {
                             ++completed;
                             if (!closed_) on_packet(from, packet);
                           });
    if (closed_) return;
    if (!ok) {
      if (auto suffix = t_.error_log_.admit("bad-stream", Clock::now()))
        log_error("tcp " + std::to_string(id_) + " from " + describe(iface_, peer_) + ": " +
                  reader_.error() + *suffix);
      close("bad stream: " + reader_.error());
      return;
    }
    // The partial-packet clock runs per packet: it starts when a packet's
    // first bytes arrive, which is now if this read finished the previous one.
    if (reader_.mid_packet() && (!was_mid || completed > 0)) partial_since_ = last_activity_;
    if (!reader_.mid_packet()) partial_since_ = {};
    read();
  }

  void on_packet(const Route& from, std::span<const std::uint8_t> packet) {
    auto now = Clock::now();
    bool first = first_packet_;
    first_packet_ = false;
    std::uint8_t type = packet[0];
    std::string error;
    if (kind_ == Kind::Session) {
      Peer* p = t_.session_peer(iface_, peer_, id_);
      if (!p) {
        close_quietly("session gone");
        return;
      }
      if (!p->link.on_packet(packet, now, error)) {
        bad_session(error);
        return;
      }
      if (type == static_cast<std::uint8_t>(wire::SessionType::Ack) && verbose())
        log_verbose("tcp " + std::to_string(id_) + ": transaction " +
                    std::to_string(be16(packet.data() + 4)) + " acknowledged, " + counters());
      // On our own session the peer only answers: the records of what we
      // asked for (push data, txend). A request or an announcement there
      // would have us answer into a stream nobody reads.
      if (type == static_cast<std::uint8_t>(wire::Type::PushData) ||
          type == static_cast<std::uint8_t>(wire::Type::StatusTxEnd)) {
        t_.cb_.deliver(from, packet);
        if (type == static_cast<std::uint8_t>(wire::Type::StatusTxEnd) && packet.size() >= 8 && verbose() &&
            !closed_)
          log_verbose("tcp " + std::to_string(id_) + ": answer (transaction " +
                      std::to_string(be16(packet.data() + 4)) + ") received, " + counters());
      } else if (!wire::is_session_type(type)) {
        bad_session("a packet of type " + std::to_string(type) + " on our own session");
      }
      return;
    }
    if (kind_ == Kind::Inbound) {
      responder_.heard(now);
      if (wire::is_session_type(type)) {
        bool was_active = responder_.active();
        if (!responder_.on_frame(packet, first, now, error)) {
          bad_session(error);
          return;
        }
        if (!was_active && responder_.active()) {
          log_verbose("tcp " + std::to_string(id_) + ": session from " +
                      describe(iface_, peer_) + (responder_.peer_primary() ? ", a primary" : ""));
          t_.speaks_sessions(iface_, peer_);
          // A primary's session is as good as its announcement (better: it
          // completed a handshake from its address), so a primary that just
          // restarted knows the others as soon as their sessions re-form.
          if (responder_.peer_primary()) {
            // With the stream's id: the engine welcomes a known primary that
            // opens a session (it may have restarted and lost everything).
            Route r{iface_, peer_, mac_, id_};
            t_.cb_.deliver(r, wire::encode(wire::AnnouncePrimary{}));
            if (closed_) return;
          }
        }
        if (type == static_cast<std::uint8_t>(wire::SessionType::Refresh)) {
          auto entries = responder_.take_refresh();
          auto outcome = t_.cb_.refreshed(from, entries);
          // Records kept alive are use; a refresh of nothing we hold is not.
          if (outcome.kept) responder_.refreshed(now);
          if (verbose())
            log_verbose("tcp " + std::to_string(id_) + ": refresh of " +
                        std::to_string(entries.size()) + " record(s), " +
                        std::to_string(outcome.kept) + " kept, " +
                        std::to_string(outcome.want.size()) + " wanted");
          responder_.wanted(std::move(outcome.want));
        }
        if (type == static_cast<std::uint8_t>(wire::SessionType::Packed)) {
          // A push-data packet, deflated: taken as if it had come as is
          // (only push data is ever packed, so no txend is among them).
          auto inner = responder_.take_unpacked();
          t_.cb_.deliver(from, inner);
          if (closed_) return;
        }
        pump();
        return;
      }
      t_.cb_.deliver(from, packet);
      if (closed_) return;
      // A request the engine did not answer (its reply budget spent, or we
      // are no primary) leaves this 2016-style connection nothing to do:
      // its requester waits for an answer or the end of the stream. Ended
      // now, it frees its slot at once instead of at the idle timeout, so
      // a flood of requests holds no more connections than it gets answers.
      if (!responder_.active() && type == static_cast<std::uint8_t>(wire::Type::Request) &&
          !answering() && replies_.empty()) {
        close("request not answered");
        return;
      }
      // On a session, a transaction the engine finished is confirmed, so
      // the opener can forget it.
      if (responder_.active() && type == static_cast<std::uint8_t>(wire::Type::StatusTxEnd) &&
          packet.size() >= 8) {
        std::uint16_t id = be16(packet.data() + 4), packets = be16(packet.data() + 6);
        if (t_.cb_.transaction_completed(mac_, id)) {
          responder_.used(now);
          responder_.completed(id, packets);
          if (verbose())
            log_verbose("tcp " + std::to_string(id_) + ": acknowledging transaction " +
                        std::to_string(id) + ", " + counters());
          pump();
        }
      }
      return;
    }
    if (wire::is_session_type(type)) {
      bad_session("a session frame on a connection that is not a session");
      return;
    }
    t_.cb_.deliver(from, packet);
  }

  std::string counters() const {
    return std::to_string(bytes_in_) + " bytes in, " + std::to_string(bytes_out_) + " bytes out";
  }

  void bad_session(const std::string& error) {
    if (auto suffix = t_.error_log_.admit("bad-session", Clock::now()))
      log_error("tcp " + std::to_string(id_) + " " + describe(iface_, peer_) + ": " + error +
                *suffix);
    close("bad session: " + error);
  }

  void pump() {
    // A loop, not recursion: a large transaction written straight into a
    // socket with room goes packet after packet here.
    while (!closed_ && !writing_ && !connecting_) {
      if (out_.empty()) {
        auto now = Clock::now();
        if (kind_ == Kind::Session) {
          if (Peer* p = t_.session_peer(iface_, peer_, id_))
            fill([&](std::vector<std::uint8_t>& b) { return p->link.next_packet(b, now); });
          if (out_.empty()) return;  // a session waits for more
        } else if (responder_.active()) {
          // Confirmations and keepalives go between the packets of an answer.
          fill([&](std::vector<std::uint8_t>& b) { return responder_.next_frame(b, now); });
        }
      }
      if (out_.empty() && job_ && !job_->next(out_)) {
        job_.reset();
        job_done_ = true;
      }
      if (out_.empty()) {
        if (job_done_ || (kind_ == Kind::Request && request_sent_)) on_all_sent();
        return;
      }
      last_write_progress_ = Clock::now();
      sending_.swap(out_);
      // Written at once where the socket has room, as it nearly always has:
      // an asynchronous write that completes at once still costs a posted
      // handler and a poll of the reactor, per packet (per acknowledgement).
      asio::error_code ec;
      std::size_t n = sock_.write_some(asio::buffer(sending_), ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) {
        ec = {};
        n = 0;
      }
      if (ec) {
        fail("write: " + ec.message());
        return;
      }
      if (n == sending_.size()) {
        wrote(n);
        continue;
      }
      writing_ = true;
      auto self = shared_from_this();
      asio::async_write(sock_, asio::buffer(sending_.data() + n, sending_.size() - n),
                        [self, n](const asio::error_code& ec, std::size_t rest) {
                          self->writing_ = false;
                          if (self->closed_) return;
                          if (ec) {
                            self->fail("write: " + ec.message());
                            return;
                          }
                          self->wrote(n + rest);
                          self->pump();
                        });
      return;
    }
  }

  // out_ from `next`: small packets go out together (a push and its txend,
  // queued acks), one segment and one wakeup at the peer, not one per
  // packet. At most kWriteBatch and one packet are held.
  template <class Next>
  void fill(Next&& next) {
    if (!next(out_)) return;
    std::vector<std::uint8_t> more;
    while (out_.size() < kWriteBatch && next(more)) out_.insert(out_.end(), more.begin(), more.end());
  }

  void wrote(std::size_t n) {
    bytes_out_ += n;
    t_.stats_.bytes_out += n;
    last_activity_ = last_write_progress_ = Clock::now();
    sending_.clear();
    // A long-lived session keeps no 64 KB buffer for the one large packet
    // it once wrote (out_ takes this buffer at the next swap).
    if (sending_.capacity() > wire::StreamReader::kKeepCapacity) std::vector<std::uint8_t>().swap(sending_);
    if (kind_ == Kind::Request) request_sent_ = true;
  }

  void on_all_sent() {
    if (all_sent_) return;
    all_sent_ = true;
    if (kind_ == Kind::Request) return;  // now wait for the answer
    if (kind_ == Kind::Inbound) {
      if (!replies_.empty()) {
        all_sent_ = job_done_ = false;
        job_ = std::move(replies_.front());
        replies_.pop_front();
        pump();
        return;
      }
      // The connection ends with the last answer, as the requester expects.
      if (finish_after_) close("reply sent");
      return;
    }
    // A push: tell the peer we are done and wait for its close, so that
    // nothing of ours is cut off by an early reset.
    asio::error_code ec;
    sock_.shutdown(asio::socket_base::shutdown_send, ec);
    if (peer_done_) close("push sent");
  }

  static constexpr std::size_t kWriteBatch = 8192;

  TcpTransport& t_;
  ConnectionId id_;
  Kind kind_;
  std::string iface_;
  PeerAddress peer_;
  Mac mac_;
  asio::ip::tcp::socket sock_;
  wire::StreamReader reader_;
  // 8 KiB: a primary holds a session per secondary, and large transfers
  // still take few reads per packet.
  std::array<std::uint8_t, 8192> rx_{};
  std::vector<std::uint8_t> out_;      // next packet to write
  std::vector<std::uint8_t> sending_;  // packet being written
  std::optional<wire::PushEncoder> job_;
  std::optional<wire::PushEncoder> original_;
  std::deque<wire::PushEncoder> replies_;  // answers waiting behind job_
  std::optional<wire::Request> request_;
  bool finish_after_ = false;
  bool job_done_ = false;
  bool all_sent_ = false;
  bool request_sent_ = false;
  bool writing_ = false;
  bool connecting_ = false;
  bool peer_done_ = false;
  bool closed_ = false;
  bool ever_connected_ = false;  // outbound: the handshake completed
  bool timed_out_ = false;
  bool quiet_ = false;
  bool first_packet_ = true;
  std::uint64_t bytes_in_ = 0, bytes_out_ = 0;
  TimePoint opened_, last_activity_, last_write_progress_{}, partial_since_{}, connect_deadline_{};
  link::SessionResponder responder_;
};

void TcpTransport::Peer::close_connection(std::string_view why) {
  // The session requeues what was not acknowledged: nothing of it may come late.
  if (auto c = conn.lock()) c->close_quietly(std::string(why), /*abort=*/true);
  conn.reset();
  conn_id = 0;
}

void TcpTransport::Peer::wake() {
  if (auto c = conn.lock()) {
    // Not from inside the link's own call: the connection may be mid-way
    // through handing it a packet.
    asio::post(t.io_, [c] { c->kick(); });
  }
}

TcpTransport::TcpTransport(asio::io_context& io, Callbacks callbacks, TcpLimits limits)
    : io_(io), cb_(std::move(callbacks)), limits_(limits), sweep_timer_(io) {}

TcpTransport::~TcpTransport() { close_all(); }

const TcpInterface* TcpTransport::find_iface(const std::string& name) const {
  auto it = listeners_.find(name);
  return it == listeners_.end() ? nullptr : &it->second.iface;
}

bool TcpTransport::listen(const TcpInterface& iface, std::string& error) {
  close_interface(iface.name);
  Listener l{iface, std::make_unique<asio::ip::tcp::acceptor>(io_)};
  asio::ip::tcp::endpoint ep(to_asio(iface.own, iface.index), wire::kPort);
  asio::error_code ec;
  l.acceptor->open(ep.protocol(), ec);
  if (!ec) l.acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec && !bind_to_device(l.acceptor->native_handle(), iface.name))
    ec = asio::error_code(errno, asio::system_category());
  if (!ec) l.acceptor->bind(ep, ec);
  if (!ec) l.acceptor->listen(64, ec);
  if (ec) {
    error = "tcp: can't listen on " + iface.name + " " + ep.address().to_string() + ": " +
            ec.message();
    return false;
  }
  auto [it, inserted] = listeners_.emplace(iface.name, std::move(l));
  accept(it->second);
  if (!sweeping_) {
    sweeping_ = true;
    sweep();
  }
  return true;
}

void TcpTransport::accept(Listener& l) {
  std::string name = l.iface.name;
  l.acceptor->async_accept([this, name](const asio::error_code& ec, asio::ip::tcp::socket sock) {
    if (ec == asio::error::operation_aborted) return;
    auto it = listeners_.find(name);
    if (it == listeners_.end()) return;
    if (ec) return on_accept_error(it->second, ec);
    it->second.retry_delay = std::chrono::milliseconds(0);
    on_accepted(it->second, std::move(sock));
    if (it->second.acceptor->is_open()) accept(it->second);
  });
}

void TcpTransport::on_accept_error(Listener& l, const asio::error_code& ec) {
  // Out of descriptors or memory (EMFILE, ENFILE, ENOMEM): the connection
  // stays queued, so accepting again at once fails again at once. Pause,
  // 100 ms doubling to 1 s, and log one line per 10 s.
  using std::chrono::milliseconds;
  l.retry_delay = l.retry_delay.count() == 0 ? milliseconds(100)
                                             : std::min(l.retry_delay * 2, milliseconds(1000));
  if (auto suffix = error_log_.admit("accept", Clock::now()))
    log_error("tcp: can't accept on " + l.iface.name + ": " + ec.message() + "; retrying in " +
              std::to_string(l.retry_delay.count()) + " ms" + *suffix);
  if (!l.retry) l.retry = std::make_unique<asio::steady_timer>(io_);
  l.retry->expires_after(l.retry_delay);
  const asio::steady_timer* timer = l.retry.get();
  l.retry->async_wait([this, name = l.iface.name, timer](const asio::error_code& e) {
    if (e) return;
    auto it = listeners_.find(name);
    // Not a listener that replaced this one under the same name.
    if (it == listeners_.end() || it->second.retry.get() != timer) return;
    if (it->second.acceptor->is_open()) accept(it->second);
  });
}

void TcpTransport::on_accepted(Listener& l, asio::ip::tcp::socket sock) {
  asio::error_code ec;
  auto remote = sock.remote_endpoint(ec);
  auto refuse = [&](const std::string& why) {
    ++stats_.refused;
    log_verbose("tcp: refused connection on " + l.iface.name + ": " + why);
    // A reset, not a close: an opener of ours takes a clean close on its
    // session hello for the 2016 framing, a reset for "try again later".
    asio::error_code ignore;
    sock.set_option(asio::socket_base::linger(true, 0), ignore);
    sock.close(ignore);
  };
  if (ec) return refuse(ec.message());
  PeerAddress peer = from_asio(remote.address());
  if (cb_.is_own_address(peer)) return refuse("from ourselves");
  if (peer.v4 != l.iface.own.v4) return refuse("wrong address family");
  if (peer.v4) {
    if (l.iface.netmask) {
      auto mask = l.iface.netmask->to_uint();
      auto a = asio::ip::address_v4({peer.ip[0], peer.ip[1], peer.ip[2], peer.ip[3]}).to_uint();
      auto o = asio::ip::address_v4({l.iface.own.ip[0], l.iface.own.ip[1], l.iface.own.ip[2],
                                     l.iface.own.ip[3]})
                   .to_uint();
      if ((a & mask) != (o & mask)) return refuse(to_string(peer) + " is not on the link's subnet");
    }
  }
  auto mac = cb_.peer_mac(l.iface.name, peer);
  if (!mac) return refuse(to_string(peer) + " has no usable MAC (not EUI-64 / not in ARP table)");
  if (count(l.iface.name, &peer) >= limits_.max_per_peer)
    return refuse(to_string(peer) + " reached the per-peer limit " +
                  std::to_string(limits_.max_per_peer));
  if (count(l.iface.name, nullptr) >= limits_.max_per_interface && !evict_unused(l.iface.name))
    return refuse("interface connection limit " + std::to_string(limits_.max_per_interface));
  ++stats_.accepted;
  ConnectionId id = next_id_++;
  auto c = std::make_shared<Connection>(*this, id, Connection::Kind::Inbound, l.iface.name, peer,
                                        *mac, std::move(sock));
  connections_.emplace(id, c);
  log_verbose("tcp " + std::to_string(id) + ": accepted " + describe(l.iface.name, peer));
  c->start_inbound();
  hurry();  // its first packet's partial timeout
}

bool TcpTransport::evict_unused(const std::string& iface) {
  // The inbound connection unused longest, if that was at least the idle
  // close ago: an honest opener with data completes a transaction on its
  // session every period, and a 2016-framing peer's connection carries one
  // transaction; so what goes is a session held by keepalives (or requests)
  // alone, or a connection kept open with stray packets. An opener with
  // nothing to send re-forms its session when it needs it. Without
  // authentication (issue 11) a forger can still hold slots by completing a
  // transaction on each every few minutes; that costs it bytes and store
  // space, where keepalives cost next to nothing.
  auto now = Clock::now();
  std::shared_ptr<Connection> victim;
  Duration longest{};
  for (const auto& [id, c] : connections_) {
    if (c->iface() != iface) continue;
    auto unused = c->inbound_unused(now);
    if (unused && *unused >= limits_.session.idle_close && *unused > longest) {
      longest = *unused;
      victim = c;
    }
  }
  if (!victim) return false;
  if (auto suffix = error_log_.admit("evicted", now))
    log_error("tcp " + std::to_string(victim->id()) + " " +
              describe(victim->iface(), victim->peer()) + ": connection unused for " +
              std::to_string(std::chrono::duration_cast<std::chrono::seconds>(longest).count()) +
              " s closed for a newcomer, " + iface + " at its connection limit " +
              std::to_string(limits_.max_per_interface) + *suffix);
  victim->close("evicted: unused, interface at its connection limit");
  return true;
}

bool TcpTransport::evict_outbound_for(const Route& to) {
  // Forged primaries are addresses on the link, not originators of the
  // mesh: they can hold the outbound slots only while no peer batman-adv
  // knows needs one. Without batman-adv's view (-b none) nothing tells them
  // apart: first come, first served, until authentication (issue 11).
  if (cb_.crowded) cb_.crowded();
  if (!cb_.in_mesh || !cb_.in_mesh(to.mac)) return false;
  std::shared_ptr<Connection> victim;
  for (const auto& [id, c] : connections_) {  // by id: the oldest first
    if (c->iface() != to.iface || c->kind() == Connection::Kind::Inbound || cb_.in_mesh(c->mac())) continue;
    victim = c;
    break;
  }
  if (!victim) return false;
  if (auto suffix = error_log_.admit("outbound evicted", Clock::now()))
    log_error("tcp " + std::to_string(victim->id()) + " to " + describe(victim->iface(), victim->peer()) +
              ", a peer batman-adv does not know, closed for " + describe(to.iface, to.addr) +
              ", which it knows: " + std::to_string(limits_.max_outbound_per_interface) +
              " connections of ours open on " + to.iface + *suffix);
  victim->close("evicted: a peer batman-adv knows needs the connection");
  return true;
}

std::size_t TcpTransport::count(const std::string& iface, const PeerAddress* peer, bool outbound_only) const {
  std::size_t n = 0;
  for (const auto& [id, c] : connections_)
    if (c->iface() == iface && (!peer || c->peer() == *peer) &&
        (!outbound_only || c->kind() != Connection::Kind::Inbound))
      ++n;
  return n;
}

void TcpTransport::forget(ConnectionId id) {
  // Keep the object alive until the current handler has returned.
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  auto keep = it->second;
  connections_.erase(it);
  asio::post(io_, [keep] {});
}

void TcpTransport::close_interface(const std::string& iface) {
  // Sessions on it go with what they had queued: the interface is gone.
  for (auto p = peers_.begin(); p != peers_.end();)
    p = p->first.first == iface ? peers_.erase(p) : std::next(p);
  auto it = listeners_.find(iface);
  if (it != listeners_.end()) {
    asio::error_code ec;
    it->second.acceptor->close(ec);
    listeners_.erase(it);
  }
  std::vector<std::shared_ptr<Connection>> doomed;
  for (auto& [id, c] : connections_)
    if (c->iface() == iface) doomed.push_back(c);
  for (auto& c : doomed) c->close("interface closed");
}

void TcpTransport::close_all() {
  peers_.clear();
  std::vector<std::string> names;
  for (auto& [n, l] : listeners_) names.push_back(n);
  for (auto& n : names) close_interface(n);
  std::vector<std::shared_ptr<Connection>> rest;
  for (auto& [id, c] : connections_) rest.push_back(c);
  for (auto& c : rest) c->close("shutdown");
  sweep_timer_.cancel();
  sweeping_ = false;
}

void TcpTransport::peer_answered(const std::string& iface, const PeerAddress& peer) {
  silent_.erase({iface, peer});
}

void TcpTransport::peer_failed(const std::string& iface, const PeerAddress& peer,
                               const std::string& why, bool timed_out) {
  // A refusal or reset says the peer speaks no TCP. A handshake lost on a
  // lossy link says little, so only a second one in a row counts.
  // The counts are a hint; primaries invented by a flood of announcements
  // would otherwise leave one entry each behind for good.
  // Silence marks briefly first (an outage), then for longer each time in
  // a row, up to a refusal's: forged primaries that only announce, trying
  // at every period, would otherwise take the outbound slots again and
  // again. A connect that is answered starts the count over.
  PeerKey key{iface, peer};
  auto mark = limits_.udp_only_for;
  if (timed_out) {
    if (silent_.size() >= 1024 && !silent_.count(key)) silent_.clear();
    Silence& s = silent_[key];
    if (++s.timeouts < 2) return;
    s.timeouts = 0;
    mark = limits_.udp_only_after_silence(++s.marks);
  } else if (auto it = silent_.find(key); it != silent_.end()) {
    it->second.timeouts = 0;
  }
  // Bounded too: past 4,096 peers the mark that ends soonest goes (that
  // peer only gets one more TCP attempt). Announcements from rotating
  // addresses would otherwise leave an entry each for 5 minutes.
  if (udp_only_until_.size() >= 4096 && !udp_only_until_.count({iface, peer})) {
    auto soonest = std::min_element(udp_only_until_.begin(), udp_only_until_.end(),
                                    [](const auto& a, const auto& b) { return a.second < b.second; });
    udp_only_until_.erase(soonest);
  }
  udp_only_until_[{iface, peer}] = Clock::now() + mark;
  log_verbose("tcp: " + describe(iface, peer) + " treated as UDP-only for " +
              std::to_string(mark.count()) + " s (" + why + ")");
}

void TcpTransport::speaks_sessions(const std::string& iface, const PeerAddress& peer) {
  // It just opened one to us: whatever an earlier refusal or silence said
  // (it was starting, or the link was down), it takes TCP now.
  PeerKey key{iface, peer};
  bool marked = udp_only_until_.erase(key) > 0;
  marked = legacy_until_.erase(key) > 0 || marked;
  if (marked)
    log_verbose("tcp: " + describe(iface, peer) + " opened a session: no longer UDP-only or 2016 framing");
  silent_.erase(key);
}

bool TcpTransport::udp_only(const std::string& iface, const PeerAddress& peer) const {
  auto it = udp_only_until_.find({iface, peer});
  return it != udp_only_until_.end() && Clock::now() < it->second;
}

bool TcpTransport::push_busy(const std::string& iface, const PeerAddress& peer) const {
  std::size_t n = 0;
  for (const auto& [id, c] : connections_) {
    if (c->kind() != Connection::Kind::Push || c->iface() != iface || c->peer() != peer) continue;
    if (c->streaming()) return true;  // one snapshot at a time on the wire
    ++n;
  }
  return n >= limits_.max_pushes_per_peer;
}

std::shared_ptr<TcpTransport::Connection> TcpTransport::open(const Route& to, int kind,
                                                              const std::string& what) {
  const TcpInterface* iface = find_iface(to.iface);
  if (!iface) return nullptr;
  // Outbound connections count against the same limits as inbound ones;
  // past them the transaction goes by UDP. An interface full of inbound
  // connections gives way as it does to an inbound newcomer (the one unused
  // longest, past the idle close): peers holding slots with sessions they
  // do not use must not push our own sessions to UDP.
  if ((count(to.iface, nullptr) >= limits_.max_per_interface && !evict_unused(to.iface)) ||
      count(to.iface, &to.addr) >= limits_.max_per_peer) {
    log_verbose("tcp: connection limit reached, " + what + " to " + describe(to.iface, to.addr) +
                " goes by UDP");
    return nullptr;
  }
  if (count(to.iface, nullptr, true) >= limits_.max_outbound_per_interface && !evict_outbound_for(to)) {
    if (auto suffix = error_log_.admit("outbound limit", Clock::now()))
      log_error("tcp: " + std::to_string(limits_.max_outbound_per_interface) +
                " connections of ours open on " + to.iface + " (as many primaries announced?), " + what +
                " to " + describe(to.iface, to.addr) + " goes by UDP" + *suffix);
    return nullptr;
  }
  ConnectionId id = next_id_++;
  auto c = std::make_shared<Connection>(*this, id, static_cast<Connection::Kind>(kind), to.iface,
                                        to.addr, to.mac, asio::ip::tcp::socket(io_));
  connections_.emplace(id, c);
  log_verbose("tcp " + std::to_string(id) + ": " + what + " to " + describe(to.iface, to.addr));
  hurry();  // its connect timeout
  return c;
}

void TcpTransport::start(const std::shared_ptr<Connection>& c, const Route& to) {
  // Called once the connection knows what to send, so that a failure, even
  // one right away, can hand that to UDP.
  const TcpInterface* iface = find_iface(to.iface);
  c->connect(asio::ip::tcp::endpoint(to_asio(to.addr, iface->index), wire::kPort), iface->own,
             iface->index);
}

void TcpTransport::push(const Route& to, wire::PushEncoder transaction) {
  auto c = open(to, static_cast<int>(Connection::Kind::Push),
                "push of " + std::to_string(transaction.total_size()) + " bytes");
  if (!c) {
    cb_.push_by_udp(to, std::move(transaction));
    return;
  }
  c->send_transaction(std::move(transaction), false);
  start(c, to);
}

void TcpTransport::request(const Route& to, const wire::Request& request) {
  auto c = open(to, static_cast<int>(Connection::Kind::Request),
                "request for type " + std::to_string(request.requested_type));
  if (!c) {
    cb_.request_by_udp(to, request);
    return;
  }
  c->send_request(request);
  start(c, to);
}

TcpTransport::Peer* TcpTransport::session_peer(const std::string& iface, const PeerAddress& peer,
                                                ConnectionId conn) {
  auto it = peers_.find({iface, peer});
  if (it == peers_.end() || it->second->conn_id != conn) return nullptr;
  return it->second.get();
}

TcpTransport::Peer& TcpTransport::session_for(const Route& to) {
  auto& p = peers_[{to.iface, to.addr}];
  if (!p) {
    // Jitter differs per peer and per daemon run.
    session_seed_ = session_seed_ * 1103515245u + 12345u + static_cast<std::uint32_t>(
        Clock::now().time_since_epoch().count());
    p = std::make_unique<Peer>(*this, to, session_seed_);
  }
  p->to.mac = to.mac;
  return *p;
}

void TcpTransport::open_session(Peer& p) {
  auto c = open(p.to, static_cast<int>(Connection::Kind::Session), "session");
  if (!c) {
    // The interface is down or at its connection limit; open() logged it.
    p.link.closed(link::CloseCause::Refused, "no connection available", Clock::now());
    return;
  }
  p.conn = c;
  p.conn_id = c->id();
  start(c, p.to);
}

void TcpTransport::session_ended(const std::string& iface, const PeerAddress& peer,
                                 ConnectionId conn, link::CloseCause cause,
                                 const std::string& why) {
  Peer* p = session_peer(iface, peer, conn);
  if (!p) return;
  bool was_up = p->link.state() == link::SessionState::Up;
  p->conn.reset();
  p->conn_id = 0;
  p->link.closed(cause, why, Clock::now());
  hurry();  // a backoff to time
  if (was_up) ++stats_.sessions_down;
  p = session_peer(iface, peer, 0);
  // A peer that never took a connection and was given up on: UDP-only for
  // a while, as for a push (a second lost handshake in a row, or a refusal).
  bool connect_failed = cause == link::CloseCause::Refused || cause == link::CloseCause::TimedOut;
  if (p && connect_failed && p->link.state() == link::SessionState::Idle)
    peer_failed(iface, peer, why, cause == link::CloseCause::TimedOut);
}

void TcpTransport::mark_legacy(const PeerKey& key) {
  // Bounded like the UDP-only marks.
  if (legacy_until_.size() >= 4096 && !legacy_until_.count(key)) {
    auto soonest = std::min_element(legacy_until_.begin(), legacy_until_.end(),
                                    [](const auto& a, const auto& b) { return a.second < b.second; });
    legacy_until_.erase(soonest);
  }
  legacy_until_[key] = Clock::now() + limits_.legacy_for;
}

bool TcpTransport::legacy(const std::string& iface, const PeerAddress& peer) const {
  auto it = legacy_until_.find({iface, peer});
  return it != legacy_until_.end() && Clock::now() < it->second;
}

void TcpTransport::session_push(const Route& to, wire::PushEncoder transaction, bool full) {
  session_for(to).link.send(std::move(transaction), full, Clock::now());
  hurry();
}

void TcpTransport::session_request(const Route& to, const wire::Request& request) {
  session_for(to).link.request(request, Clock::now());
  hurry();
}

void TcpTransport::session_keep(const Route& to) {
  // Only on an interface we listen on (up), as open() requires.
  if (!find_iface(to.iface)) return;
  session_for(to).link.keep_open(Clock::now());
  hurry();
}

bool TcpTransport::reply(ConnectionId conn, wire::PushEncoder transaction) {
  auto it = connections_.find(conn);
  if (it == connections_.end()) return false;
  auto c = it->second;
  hurry();
  return c->send_reply(std::move(transaction));
}

void TcpTransport::sweep() {
  auto now = Clock::now();
  std::vector<std::shared_ptr<Connection>> all;
  for (auto& [id, c] : connections_) all.push_back(c);
  for (auto& c : all) c->check(now);
  // Session timers (hello, keepalive, dead peer, backoff, idle) need no
  // more than the sweep's quarter second.
  std::vector<PeerKey> keys;
  for (auto& [k, p] : peers_) keys.push_back(k);
  for (auto& k : keys) {
    auto it = peers_.find(k);
    if (it == peers_.end()) continue;
    it->second->link.on_timer(now);
    it = peers_.find(k);
    if (it != peers_.end() && it->second->link.finished() && !it->second->conn.lock())
      peers_.erase(it);
  }
  for (auto it = legacy_until_.begin(); it != legacy_until_.end();)
    it = now >= it->second ? legacy_until_.erase(it) : std::next(it);
  for (auto it = udp_only_until_.begin(); it != udp_only_until_.end();)
    it = now >= it->second ? udp_only_until_.erase(it) : std::next(it);
  // A quarter second while something is on the move; otherwise once a
  // second, which is plenty for keepalives (10 s), dead peers (30 s) and the
  // link-down test (5 s): an idle router is not woken four times a second.
  // A session's own deadlines (a backoff of 200 ms and up, a hello) are
  // kept to within kSweepBusy.
  auto after = kSweepIdle;
  for (const auto& [id, c] : connections_)
    if (c->busy()) after = kSweepBusy;
  for (const auto& [k, p] : peers_)
    if (auto d = p->link.deadline(); d && *d < now + kSweepIdle) after = kSweepBusy;
  arm_sweep(after);
}

void TcpTransport::arm_sweep(std::chrono::milliseconds after) {
  sweep_timer_.expires_after(after);
  sweep_timer_.async_wait([this](const asio::error_code& ec) {
    if (!ec) sweep();
  });
}

void TcpTransport::hurry() {
  if (!sweeping_) return;
  if (sweep_timer_.expiry() > asio::steady_timer::clock_type::now() + kSweepBusy) arm_sweep(kSweepBusy);
}

}  // namespace alfred::net
