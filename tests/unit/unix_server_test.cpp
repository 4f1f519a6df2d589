// The unix socket server against raw clients in the same process: answers
// written in pieces, deadlines for clients that stop reading, eviction when
// the table is full, the listener cap and the accept back-off.
#include "ipc/unix_server.hpp"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <random>

#include "store/store.hpp"
#include "wire/packet.hpp"

namespace alfred::ipc {
namespace {

using namespace std::chrono_literals;

std::string temp_path(const char* name) {
  return "/tmp/alfred-unix-server-test-" + std::to_string(::getpid()) + "-" + name + ".sock";
}

// A non-blocking client socket, connected (the server's backlog takes it
// without an accept).
int connect_client(const std::string& path, int rcvbuf = 0) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  if (rcvbuf) ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::strncpy(sa.sun_path, path.c_str(), sizeof sa.sun_path - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

void send_all(int fd, const std::vector<std::uint8_t>& b) {
  ASSERT_EQ(::send(fd, b.data(), b.size(), MSG_NOSIGNAL), static_cast<ssize_t>(b.size()));
}

// What the peer did to the socket: "open", "eof" or "reset"; reads (and
// drops) what is waiting.
std::string drain(int fd, std::size_t* got = nullptr) {
  std::uint8_t buf[65536];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      if (got) *got += static_cast<std::size_t>(n);
      continue;
    }
    if (n == 0) return "eof";
    if (errno == EAGAIN || errno == EWOULDBLOCK) return "open";
    if (errno == ECONNRESET) return "reset";
    return std::strerror(errno);
  }
}

RecordPtr make_record(std::uint8_t i, std::size_t size) {
  auto r = std::make_shared<Record>();
  r->source = Mac{0x02, 0, 0, 0, 0, i};
  r->type = 64;
  r->version = static_cast<std::uint8_t>(i * 3);
  r->data.resize(size);
  for (std::size_t k = 0; k < size; ++k) r->data[k] = static_cast<std::uint8_t>(k * 7 + i);
  return r;
}

Snapshot records_of_sizes(const std::vector<std::size_t>& sizes) {
  Snapshot s;
  for (std::size_t i = 0; i < sizes.size(); ++i)
    s.push_back(make_record(static_cast<std::uint8_t>(i), sizes[i]));
  return s;
}

std::vector<std::uint8_t> expected_answer(const Snapshot& s, std::uint16_t tx_id) {
  std::vector<std::uint8_t> out;
  std::uint16_t seqno = 0;
  for (const auto& r : s) {
    std::size_t start = wire::encode_push_header(out, tx_id, seqno++);
    wire::append_record(out, r->source, r->type, r->version, r->data);
    wire::finish_tlv(out, start);
  }
  return out;
}

// A server whose handler answers requests with `answer` and registrations
// as listeners.
struct ServerFixture : ::testing::Test {
  asio::io_context io;
  std::string path;
  Snapshot answer;
  std::vector<std::uint8_t> handled;  // TLV types, in the order handled
  std::unique_ptr<UnixServer> server;

  void start(UnixServerLimits limits, const char* name) {
    path = temp_path(name);
    server = std::make_unique<UnixServer>(
        io, path,
        [this](ClientId id, std::span<const std::uint8_t> msg) {
          handled.push_back(msg[0]);
          auto d = wire::decode(msg);
          ASSERT_TRUE(d.ok) << d.error;
          if (auto* req = std::get_if<wire::Request>(&d.packet)) {
            server->reply_records(id, answer, req->tx_id);
          } else if (std::holds_alternative<wire::EventRegister>(d.packet)) {
            server->make_listener(id);
          } else {
            server->finish(id);
          }
        },
        limits);
    std::string error;
    ASSERT_TRUE(server->open(error)) << error;
  }

  void TearDown() override {
    if (server) server->close();
    ::unlink(path.c_str());
  }

  void run_for(std::chrono::milliseconds d) {
    io.restart();
    io.run_for(d);
  }
  // Reads everything the server sends on `fd` into `got` until it closes.
  bool read_to_eof(int fd, std::vector<std::uint8_t>& got, std::chrono::milliseconds limit) {
    return run_until(
        [&] {
          std::uint8_t buf[65536];
          for (;;) {
            ssize_t n = ::recv(fd, buf, sizeof buf, 0);
            if (n <= 0) return n == 0;
            got.insert(got.end(), buf, buf + n);
          }
        },
        limit);
  }
  template <class Pred>
  bool run_until(Pred pred, std::chrono::milliseconds limit) {
    auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      if (pred()) return true;
      run_for(5ms);
    }
    return pred();
  }
};

std::vector<std::uint8_t> request_bytes(std::uint16_t tx_id) {
  return wire::encode(wire::Request{64, tx_id});
}

TEST_F(ServerFixture, AnswerIsByteExactWhenReadInSmallPieces) {
  start({}, "exact");
  // Small records (copied), the threshold around 512 bytes, large ones
  // (written from the record itself), empty ones, and many small ones so one
  // answer takes several batches.
  std::vector<std::size_t> sizes = {10, 0, 511, 512, 50000, 3, 65000, 1};
  for (int i = 0; i < 300; ++i) sizes.push_back(static_cast<std::size_t>(i % 97));
  sizes.push_back(20000);
  answer = records_of_sizes(sizes);
  auto want = expected_answer(answer, 0x1234);

  int fd = connect_client(path, 4096);
  ASSERT_GE(fd, 0);
  send_all(fd, request_bytes(0x1234));
  std::vector<std::uint8_t> got;
  std::mt19937 rng(7);
  std::string state = "open";
  auto end = std::chrono::steady_clock::now() + 10s;
  while (state == "open" && std::chrono::steady_clock::now() < end) {
    run_for(1ms);
    std::uint8_t buf[3000];
    std::size_t want_n = 1 + rng() % sizeof buf;
    ssize_t n = ::recv(fd, buf, want_n, 0);
    if (n > 0) got.insert(got.end(), buf, buf + n);
    else if (n == 0) state = "eof";
  }
  ::close(fd);
  EXPECT_EQ(state, "eof");
  ASSERT_EQ(got.size(), want.size());
  EXPECT_TRUE(got == want);
  EXPECT_EQ(server->client_count(), 0u);
}

TEST_F(ServerFixture, ASetIsHandledBeforeARequestThatConnectedAfterIt) {
  start({}, "order");
  // A set of 60 KB written and closed, then a request on a new connection:
  // the set's message must be taken whole before the request's.
  wire::PushData push;
  std::vector<std::uint8_t> payload(60000, 0x5a);
  push.records.push_back(wire::RecordView{Mac{2, 0, 0, 0, 0, 1}, 64, 0, payload});
  int setter = connect_client(path);
  send_all(setter, wire::encode(push));
  ::close(setter);
  int reader = connect_client(path);
  send_all(reader, request_bytes(9));
  ASSERT_TRUE(run_until([&] { return handled.size() == 2; }, 1000ms));
  EXPECT_EQ(handled[0], static_cast<std::uint8_t>(wire::Type::PushData));
  EXPECT_EQ(handled[1], static_cast<std::uint8_t>(wire::Type::Request));
  ::close(reader);
}

TEST_F(ServerFixture, ClientThatStopsReadingIsClosedAfterTheStallTimeout) {
  UnixServerLimits l;
  l.write_stall_timeout = 300ms;
  start(l, "stall");
  answer = records_of_sizes(std::vector<std::size_t>(40, 50000));  // 2 MB
  int fd = connect_client(path, 4096);
  ASSERT_GE(fd, 0);
  send_all(fd, request_bytes(1));
  run_for(150ms);
  ASSERT_EQ(server->client_count(), 1u);
  // Stalled: the server holds only a few KiB for it (the payloads are the
  // records' own).
  EXPECT_LT(server->buffered_bytes(), 16u * 1024);
  EXPECT_TRUE(run_until([&] { return server->client_count() == 0; }, 2000ms));
  EXPECT_EQ(server->stats().write_stalls, 1u);
  std::size_t got = 0;
  EXPECT_NE(drain(fd, &got), "open");
  EXPECT_GT(got, 0u);
  EXPECT_LT(got, 2000000u);
  ::close(fd);
}

TEST_F(ServerFixture, TrickleReaderIsClosedAtTheReplyDeadline) {
  UnixServerLimits l;
  l.write_stall_timeout = 5000ms;
  l.reply_timeout = 400ms;
  start(l, "trickle");
  answer = records_of_sizes(std::vector<std::size_t>(40, 50000));
  int fd = connect_client(path, 4096);
  ASSERT_GE(fd, 0);
  send_all(fd, request_bytes(1));
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(run_until([&] { return server->client_count() == 1; }, 200ms));
  std::size_t got = 0;
  while (server->client_count() > 0 && std::chrono::steady_clock::now() - t0 < 3s) {
    run_for(20ms);
    std::uint8_t b[64];
    ssize_t n = ::recv(fd, b, sizeof b, 0);  // keeps the answer moving, slowly
    if (n > 0) got += static_cast<std::size_t>(n);
  }
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(server->client_count(), 0u);
  EXPECT_GE(took, 350ms);
  EXPECT_LT(took, 2000ms);
  EXPECT_GT(got, 0u);
  EXPECT_NE(drain(fd), "open");
  EXPECT_EQ(server->stats().reply_timeouts, 1u);
  EXPECT_EQ(server->stats().write_stalls, 0u);
  ::close(fd);
}

TEST_F(ServerFixture, FullTableEvictsTheClientIdleLongestButNoListener) {
  UnixServerLimits l;
  l.max_clients = 3;
  l.reply_evict_idle = 100ms;
  start(l, "evict");
  answer = records_of_sizes(std::vector<std::size_t>(40, 50000));
  int listener = connect_client(path);
  send_all(listener, wire::encode(wire::EventRegister{}));
  ASSERT_TRUE(run_until([&] { return server->listener_count() == 1; }, 1000ms));
  int stalled = connect_client(path, 4096);
  send_all(stalled, request_bytes(1));
  run_for(100ms);
  int silent = connect_client(path);
  run_for(100ms);
  ASSERT_EQ(server->client_count(), 3u);
  // A fourth: the stalled writer (not moved for reply_evict_idle) first.
  int fourth = connect_client(path);
  ASSERT_TRUE(run_until([&] { return server->stats().evicted == 1; }, 1000ms));
  EXPECT_NE(drain(stalled), "open");
  EXPECT_EQ(drain(silent), "open");
  // A fifth: now the silent one, the oldest of the two still sending.
  int fifth = connect_client(path);
  ASSERT_TRUE(run_until([&] { return server->stats().evicted == 2; }, 1000ms));
  EXPECT_NE(drain(silent), "open");
  EXPECT_EQ(drain(fourth), "open");
  EXPECT_EQ(drain(listener), "open");
  EXPECT_EQ(server->listener_count(), 1u);
  EXPECT_EQ(server->client_count(), 3u);
  for (int fd : {listener, stalled, silent, fourth, fifth}) ::close(fd);
}

// An answer that paused for less than reply_evict_idle (a loop busy
// accepting a flood) is not cut off for clients that connect after it and
// send nothing: they go first, oldest first, and the reader gets all of its
// answer (CI, ASan, the hostile lab's phase 3: 5 of 40 records).
TEST_F(ServerFixture, FullTableEvictsSilentClientsBeforeAReaderThatPaused) {
  UnixServerLimits l;
  l.max_clients = 3;
  l.reply_evict_idle = 10000ms;
  start(l, "evictsilent");
  answer = records_of_sizes(std::vector<std::size_t>(40, 50000));
  int reader = connect_client(path, 4096);
  send_all(reader, request_bytes(5));
  run_for(100ms);  // it reads nothing yet: its answer has not moved since
  int silent1 = connect_client(path);
  run_for(50ms);
  int silent2 = connect_client(path);
  run_for(50ms);
  ASSERT_EQ(server->client_count(), 3u);
  int fourth = connect_client(path);
  ASSERT_TRUE(run_until([&] { return server->stats().evicted == 1; }, 1000ms));
  EXPECT_NE(drain(silent1), "open") << "the silent client first heard first";
  EXPECT_EQ(drain(silent2), "open");
  std::vector<std::uint8_t> got;
  ASSERT_TRUE(read_to_eof(reader, got, 3000ms));
  EXPECT_EQ(got, expected_answer(answer, 5));
  for (int fd : {reader, silent1, silent2, fourth}) ::close(fd);
}

// Each answer keeps a list of its records while it is written: what clients
// that stop reading hold together is bounded. Past the bound, idle answers
// are abandoned (the least recently moving first) and an honest reader gets
// all of its answer; when every answer is moving, the new one is refused
// with an error rather than cutting off a reader.
TEST_F(ServerFixture, AnswersHeldByStalledReadersAreBoundedInMemory) {
  answer = records_of_sizes(std::vector<std::size_t>(40, 50000));  // 2 MB
  UnixServerLimits l;
  l.max_reply_bytes = UnixServer::reply_cost(answer) * 5 / 2;
  l.reply_evict_idle = 100ms;
  start(l, "replymem");
  std::vector<int> stalled;
  for (int k = 0; k < 3; ++k) {
    stalled.push_back(connect_client(path, 4096));
    send_all(stalled.back(), request_bytes(static_cast<std::uint16_t>(k + 1)));
    run_for(200ms);
  }
  ASSERT_TRUE(run_until([&] { return server->stats().replies_abandoned == 1; }, 1000ms));
  EXPECT_LE(server->reply_bytes(), l.max_reply_bytes);
  EXPECT_NE(drain(stalled[0]), "open") << "the one that moved least recently";
  EXPECT_EQ(drain(stalled[1]), "open");
  run_for(200ms);
  int honest = connect_client(path);
  send_all(honest, request_bytes(9));
  std::vector<std::uint8_t> got;
  ASSERT_TRUE(read_to_eof(honest, got, 3000ms));
  EXPECT_EQ(got, expected_answer(answer, 9));
  EXPECT_EQ(server->stats().replies_abandoned, 2u);
  for (int fd : stalled) ::close(fd);
  ::close(honest);
  ASSERT_TRUE(run_until([&] { return server->client_count() == 0; }, 12000ms));
  EXPECT_EQ(server->reply_bytes(), 0u);
}

TEST_F(ServerFixture, ANewAnswerIsRefusedWhenEveryHeldOneIsMoving) {
  answer = records_of_sizes(std::vector<std::size_t>(40, 50000));
  UnixServerLimits l;
  l.max_reply_bytes = UnixServer::reply_cost(answer) * 3 / 2;
  l.reply_evict_idle = 10000ms;  // the first answer counts as moving
  start(l, "replyrefuse");
  int first = connect_client(path, 4096);
  send_all(first, request_bytes(1));
  run_for(100ms);
  int second = connect_client(path);
  send_all(second, request_bytes(2));
  std::vector<std::uint8_t> got;
  ASSERT_TRUE(read_to_eof(second, got, 2000ms));
  EXPECT_EQ(got, wire::encode(wire::StatusError::failed(2)));
  EXPECT_EQ(server->stats().replies_refused, 1u);
  EXPECT_EQ(server->stats().replies_abandoned, 0u);
  EXPECT_EQ(drain(first), "open");
  ::close(first);
  ::close(second);
}

// The review's slow-reader attack: clients that read a trickle never look
// idle; once they have run for reply_evict_age they give way too, so a new
// request is not refused for as long as they keep trickling.
TEST_F(ServerFixture, TrickleReadersGiveWayOnceTheyRunLong) {
  answer = records_of_sizes(std::vector<std::size_t>(40, 50000));
  UnixServerLimits l;
  l.max_reply_bytes = UnixServer::reply_cost(answer) * 3 / 2;
  l.reply_evict_idle = 10000ms;
  l.reply_evict_age = 300ms;
  start(l, "replyage");
  int trickle = connect_client(path, 4096);
  send_all(trickle, request_bytes(1));
  auto t0 = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - t0 < 400ms) {
    run_for(20ms);
    std::uint8_t b[16];
    (void)::recv(trickle, b, sizeof b, 0);  // keeps moving, slowly
  }
  int honest = connect_client(path);
  send_all(honest, request_bytes(2));
  std::vector<std::uint8_t> got;
  ASSERT_TRUE(read_to_eof(honest, got, 3000ms));
  EXPECT_EQ(got, expected_answer(answer, 2));
  EXPECT_EQ(server->stats().replies_abandoned, 1u);
  EXPECT_EQ(server->stats().replies_refused, 0u);
  EXPECT_NE(drain(trickle), "open");
  ::close(trickle);
  ::close(honest);
}

// A record replaced while its answer is being written is sent in its
// current version, as a request made then would get it.
TEST_F(ServerFixture, ARecordReplacedMidAnswerIsSentAsItIsNow) {
  answer = records_of_sizes(std::vector<std::size_t>(40, 50000));
  std::map<std::pair<std::uint8_t, Mac>, RecordPtr> current;
  start(UnixServerLimits{}, "lookup");
  server->set_lookup([&](std::uint8_t type, const Mac& source) -> RecordPtr {
    auto it = current.find({type, source});
    return it == current.end() ? nullptr : it->second;
  });
  int fd = connect_client(path, 4096);
  send_all(fd, request_bytes(4));
  run_for(100ms);
  // Every record replaced by a new version of another size; the old ones go.
  Snapshot replaced = records_of_sizes(std::vector<std::size_t>(40, 700));
  for (const auto& r : replaced) current[{r->type, r->source}] = r;
  Snapshot old = answer;
  answer.clear();
  std::weak_ptr<const Record> gone = old.back();
  old.clear();
  EXPECT_TRUE(gone.expired());
  std::vector<std::uint8_t> got;
  ASSERT_TRUE(read_to_eof(fd, got, 3000ms));
  // Whatever was batched before the change is old, the rest is the new
  // version: every packet decodes, seqnos run on, the last record is new.
  std::size_t pos = 0, packets = 0, new_ones = 0;
  while (pos + 4 <= got.size()) {
    std::size_t len = 4 + (got[pos + 2] << 8 | got[pos + 3]);
    ASSERT_LE(pos + len, got.size());
    auto d = wire::decode(std::span<const std::uint8_t>(got.data() + pos, len));
    ASSERT_TRUE(d.ok) << d.error;
    auto& p = std::get<wire::PushData>(d.packet);
    EXPECT_EQ(p.seqno, packets);
    new_ones += p.records.at(0).data.size() == 700;
    pos += len;
    ++packets;
  }
  EXPECT_EQ(pos, got.size());
  EXPECT_EQ(packets, 40u);
  EXPECT_GT(new_ones, 30u);
  ::close(fd);
}

// A slow reader keeps no record the store has let go: what is replaced or
// dropped while its answer is written is left out, and freed.
TEST_F(ServerFixture, AnAnswerHoldsNoRecordTheStoreDropped) {
  answer = records_of_sizes(std::vector<std::size_t>(40, 50000));
  start(UnixServerLimits{}, "weakrefs");
  int fd = connect_client(path, 4096);
  send_all(fd, request_bytes(3));
  run_for(100ms);
  std::weak_ptr<const Record> last = answer.back();
  answer.clear();  // "the store" drops them all
  EXPECT_TRUE(last.expired()) << "the answer does not keep them alive";
  std::size_t got = 0;
  ASSERT_TRUE(run_until([&] { return drain(fd, &got) == "eof"; }, 3000ms));
  EXPECT_GT(got, 0u);
  EXPECT_LT(got, 40u * 50000u / 4) << "only what was written or batched before";
  ::close(fd);
}

// The default bound holds the lists of 20 answers of a full store at once.
TEST(UnixServerLimitsDefaults, TwentyAnswersOfAFullStoreFit) {
  Snapshot full(StoreLimits{}.max_records);
  EXPECT_GE(UnixServerLimits{}.max_reply_bytes, 20 * UnixServer::reply_cost(full));
}

TEST_F(ServerFixture, ListenerCapAndUnreadEventLimit) {
  UnixServerLimits l;
  l.max_listeners = 2;
  l.max_listener_backlog = 1024;
  start(l, "listeners");
  std::vector<int> fds;
  for (int i = 0; i < 3; ++i) {
    fds.push_back(connect_client(path, 4096));
    send_all(fds.back(), wire::encode(wire::EventRegister{}));
  }
  ASSERT_TRUE(run_until([&] { return server->stats().listeners_refused == 1; }, 1000ms));
  EXPECT_EQ(server->listener_count(), 2u);
  auto event = wire::encode(wire::EventNotify{64, Mac{2, 0, 0, 0, 0, 1}});
  // Events reach listeners that read; one that does not is dropped once the
  // kernel's buffer and our 1 KiB are full.
  std::size_t got[2] = {0, 0};
  for (int i = 0; i < 2000; ++i) {
    server->notify_listeners(event);
    io.poll();
    drain(fds[0], &got[0]);
    drain(fds[1], &got[1]);
  }
  run_for(50ms);
  drain(fds[0], &got[0]);
  drain(fds[1], &got[1]);
  EXPECT_EQ(got[0], 2000 * event.size());
  EXPECT_EQ(got[1], 2000 * event.size());
  EXPECT_EQ(drain(fds[2]), "eof");
  // Both read here, so nobody is dropped: now one stops.
  EXPECT_EQ(server->listener_count(), 2u);
  std::size_t got_reader = 0;
  std::size_t rounds = 0;
  while (server->listener_count() == 2 && rounds < 200000) {
    server->notify_listeners(event);
    io.poll();
    drain(fds[0], &got_reader);
    ++rounds;
  }
  EXPECT_EQ(server->listener_count(), 1u);
  EXPECT_EQ(server->stats().listeners_dropped, 1u);
  EXPECT_LE(server->buffered_bytes(), 2048u);
  for (int fd : fds) ::close(fd);
}

// Lowers this process' descriptor limit so that accept fails with EMFILE.
struct FdLimit {
  rlimit saved{};
  explicit FdLimit() {
    getrlimit(RLIMIT_NOFILE, &saved);
    int fd = ::dup(0);  // the lowest free descriptor: all below it are in use
    ::close(fd);
    rlimit low = saved;
    low.rlim_cur = static_cast<rlim_t>(fd);
    setrlimit(RLIMIT_NOFILE, &low);
  }
  ~FdLimit() { restore(); }
  void restore() { setrlimit(RLIMIT_NOFILE, &saved); }
};

TEST_F(ServerFixture, AcceptFailuresBackOff) {
  start({}, "emfile");
  std::vector<int> fds;
  for (int i = 0; i < 5; ++i) fds.push_back(connect_client(path));
  {
    FdLimit limit;
    run_for(1000ms);
    // 100, 200, 400 and 800 ms pauses: a handful of tries, not a busy loop.
    EXPECT_GE(server->stats().accept_failures, 3u);
    EXPECT_LE(server->stats().accept_failures, 6u);
    EXPECT_EQ(server->stats().accepted, 0u);
  }
  // The pause is at most 1 s; then every waiting client is taken.
  EXPECT_TRUE(run_until([&] { return server->stats().accepted == 5; }, 2000ms));
  auto failures = server->stats().accept_failures;
  int again = connect_client(path);
  EXPECT_TRUE(run_until([&] { return server->stats().accepted == 6; }, 200ms));
  EXPECT_EQ(server->stats().accept_failures, failures);
  for (int fd : fds) ::close(fd);
  ::close(again);
}

TEST(LogThrottle, OneLinePerIntervalWithACount) {
  LogThrottle t(10s);
  TimePoint t0 = TimePoint{} + 1000s;
  EXPECT_TRUE(t.log("x", false, t0));
  EXPECT_FALSE(t.log("x", false, t0 + 1s));
  EXPECT_FALSE(t.log("x", false, t0 + 9s));
  EXPECT_EQ(t.suppressed(), 2u);
  EXPECT_TRUE(t.log("x", false, t0 + 10s));
  EXPECT_EQ(t.suppressed(), 0u);
}

}  // namespace
}  // namespace alfred::ipc
