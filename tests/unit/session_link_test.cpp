// The sender's and the acceptor's side of a session, driven by hand: the
// connection's events in, the link's requests out, on a virtual clock.
#include "link/session_link.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "link/session_responder.hpp"
#include "wire/session_frames.hpp"

namespace alfred::link {
namespace {

using namespace std::chrono_literals;
using Bytes = std::vector<std::uint8_t>;

struct Recorder : SessionEvents {
  int opens = 0, closes = 0, wakes = 0;
  std::vector<std::uint16_t> udp, legacy, udp_requests, legacy_requests;
  std::vector<bool> learned_;
  std::vector<std::string> lines;
  void open_connection() override { ++opens; }
  void close_connection(std::string_view) override { ++closes; }
  void wake() override { ++wakes; }
  void push_by_udp(wire::PushEncoder tx) override { udp.push_back(tx.tx_id()); }
  void push_by_legacy(wire::PushEncoder tx) override { legacy.push_back(tx.tx_id()); }
  void request_by_udp(const wire::Request& r) override { udp_requests.push_back(r.tx_id); }
  void request_by_legacy(const wire::Request& r) override { legacy_requests.push_back(r.tx_id); }
  void learned(bool s) override { learned_.push_back(s); }
  void log(std::string_view l) override { lines.emplace_back(l); }
};

wire::PushEncoder tx(std::uint16_t id, std::size_t records = 1) {
  Snapshot snap;
  for (std::size_t i = 0; i < records; ++i) {
    auto r = std::make_shared<Record>();
    r->source = Mac{0x02, 0, 0, 0, 0, static_cast<std::uint8_t>(i + 1)};
    r->type = 64;
    r->data.assign(100, static_cast<std::uint8_t>(id));
    snap.push_back(r);
  }
  return wire::PushEncoder(std::move(snap), id, false);
}

Bytes answer_hello() {
  wire::SessionHello h;
  h.answer = true;
  return wire::encode(h);
}

struct SessionLinkTest : ::testing::Test {
  Recorder ev;
  TimePoint t0 = TimePoint{} + 1000s;
  TimePoint now = t0;
  SessionLimits limits;
  std::unique_ptr<SessionLink> link;

  void SetUp() override { link = std::make_unique<SessionLink>(ev, limits, 42); }

  // Everything the link writes now, as packets.
  std::vector<Bytes> drain() {
    std::vector<Bytes> out;
    Bytes b;
    while (link->next_packet(b, now)) out.push_back(b);
    return out;
  }
  void feed(const Bytes& b) {
    std::string error;
    ASSERT_TRUE(link->on_packet(b, now, error)) << error;
  }
  // Finish the connect and the hello of a link that is connecting.
  void bring_up() {
    ASSERT_EQ(link->state(), SessionState::Connecting);
    link->connected(now);
    auto hello = drain();
    ASSERT_FALSE(hello.empty());
    ASSERT_EQ(hello.front()[0], static_cast<std::uint8_t>(wire::SessionType::Hello));
    feed(answer_hello());
    ASSERT_EQ(link->state(), SessionState::Up);
  }
  // Lets the clock run while the link is in its backoff.
  void wait_out_backoff(Duration step = 10ms, int max_steps = 100000) {
    for (int k = 0; k < max_steps && link->state() == SessionState::Backoff; ++k) {
      now += step;
      link->on_timer(now);
    }
  }
  // The tx ids of the transactions among `packets`, from their txends.
  static std::vector<std::uint16_t> txends(const std::vector<Bytes>& packets) {
    std::vector<std::uint16_t> ids;
    for (const auto& p : packets)
      if (p[0] == static_cast<std::uint8_t>(wire::Type::StatusTxEnd))
        ids.push_back(static_cast<std::uint16_t>(p[4] << 8 | p[5]));
    return ids;
  }
};

TEST_F(SessionLinkTest, FirstSendOpensOneConnectionAndWaitsForTheHelloAnswer) {
  link->send(tx(1), false, now);
  link->send(tx(2), false, now);
  EXPECT_EQ(ev.opens, 1);
  EXPECT_EQ(link->state(), SessionState::Connecting);
  link->connected(now);
  auto first = drain();
  ASSERT_EQ(first.size(), 1u);  // the hello only: nothing before the peer answers
  EXPECT_EQ(first[0][0], static_cast<std::uint8_t>(wire::SessionType::Hello));
  feed(answer_hello());
  EXPECT_EQ(ev.learned_, std::vector<bool>{true});
  EXPECT_EQ(txends(drain()), (std::vector<std::uint16_t>{1, 2}));
  EXPECT_EQ(link->awaiting_ack(), 2u);
}

TEST_F(SessionLinkTest, AcknowledgedTransactionsAreForgotten) {
  link->send(tx(7), false, now);
  bring_up();
  drain();
  EXPECT_EQ(link->awaiting_ack(), 1u);
  feed(wire::encode(wire::SessionAck{7, 1}));
  EXPECT_EQ(link->awaiting_ack(), 0u);
  feed(wire::encode(wire::SessionAck{99, 1}));  // an ack of nothing changes nothing
  EXPECT_EQ(link->queued(), 0u);
}

TEST_F(SessionLinkTest, UnacknowledgedTransactionsAreResentOnTheNextSession) {
  link->send(tx(1), false, now);
  link->send(tx(2), false, now);
  bring_up();
  drain();
  feed(wire::encode(wire::SessionAck{1, 1}));
  // The session breaks with transaction 2 written but not confirmed, and 3
  // half written.
  link->send(tx(3, 2000), false, now);  // several packets
  Bytes b;
  ASSERT_TRUE(link->next_packet(b, now));
  link->closed(CloseCause::Closed, "reset by peer", now);
  EXPECT_EQ(link->state(), SessionState::Backoff);
  EXPECT_EQ(link->resent(), 2u);
  // Reconnects after the jittered backoff (200 ms +-25%), not before.
  now += 140ms;
  link->on_timer(now);
  EXPECT_EQ(ev.opens, 1);
  now += 120ms;
  link->on_timer(now);
  EXPECT_EQ(ev.opens, 2);
  bring_up();
  auto again = drain();
  EXPECT_EQ(txends(again), (std::vector<std::uint16_t>{2, 3}));
  // Transaction 3 from its first packet again.
  std::size_t pushes3 = 0;
  for (const auto& p : again)
    if (p[0] == 0 && p[4] == 0 && p[5] == 3) ++pushes3;
  EXPECT_GT(pushes3, 1u);
  // 2 fits a datagram: a copy by UDP 250 ms after it was queued, while the
  // link waited to reconnect. 3 does not: it waits for the session.
  EXPECT_EQ(ev.udp, std::vector<std::uint16_t>{2});
  EXPECT_TRUE(ev.legacy.empty());
}

TEST_F(SessionLinkTest, AFullSyncSupersedesWhatWasQueuedBeforeIt) {
  link->send(tx(1), false, now);
  bring_up();
  drain();  // 1 awaits its ack
  link->closed(CloseCause::Failed, "write error", now);
  link->send(tx(2), false, now);
  link->send(tx(3), true, now);  // full sync: 1 and 2 are in it
  EXPECT_EQ(link->queued(), 1u);
  EXPECT_EQ(link->superseded(), 2u);
  now += 1s;
  link->on_timer(now);
  bring_up();
  EXPECT_EQ(txends(drain()), std::vector<std::uint16_t>{3});
  EXPECT_EQ(ev.opens, 2);
}

TEST_F(SessionLinkTest, TheQueueIsBounded) {
  limits.max_queued = 3;
  link = std::make_unique<SessionLink>(ev, limits, 1);
  for (std::uint16_t i = 1; i <= 10; ++i) link->send(tx(i), false, now);
  EXPECT_EQ(link->queued(), 3u);
  EXPECT_EQ(ev.opens, 1);
  bring_up();
  EXPECT_EQ(txends(drain()), (std::vector<std::uint16_t>{8, 9, 10}));
}

TEST_F(SessionLinkTest, APeerThatClosesOnTheHelloSpeaksThe2016Framing) {
  link->send(tx(1), false, now);
  wire::Request r;
  r.requested_type = 65;
  r.tx_id = 5;
  link->request(r, now);
  link->connected(now);
  drain();
  link->closed(CloseCause::Closed, "peer closed", now);
  EXPECT_EQ(ev.learned_, std::vector<bool>{false});
  EXPECT_EQ(ev.legacy, std::vector<std::uint16_t>{1});
  EXPECT_EQ(ev.legacy_requests, std::vector<std::uint16_t>{5});
  EXPECT_EQ(link->state(), SessionState::Idle);
  EXPECT_TRUE(link->finished());
}

TEST_F(SessionLinkTest, APeerThatNeverAnswersTheHelloIsTreatedAsLegacy) {
  link->send(tx(1), false, now);
  link->connected(now);
  drain();
  now += limits.hello_timeout;
  link->on_timer(now);
  EXPECT_EQ(ev.closes, 1);
  EXPECT_EQ(ev.legacy, std::vector<std::uint16_t>{1});
}

TEST_F(SessionLinkTest, AnUnknownPeerThatRefusesGetsEverythingByUdp) {
  link->send(tx(1), false, now);
  link->closed(CloseCause::Refused, "connection refused", now);
  EXPECT_EQ(ev.udp, std::vector<std::uint16_t>{1});
  EXPECT_TRUE(link->finished());
}

TEST_F(SessionLinkTest, APeerThatHadASessionIsRetriedWithGrowingJitteredBackoff) {
  link->send(tx(1, 20), false, now);  // larger than a datagram: no UDP copy
  bring_up();
  drain();
  link->closed(CloseCause::Closed, "peer restarted", now);
  std::vector<Duration> waits;
  for (int i = 0; i < limits.max_failed_reconnects; ++i) {
    TimePoint start = now;
    int opens = ev.opens;
    for (int k = 0; k < 10000 && ev.opens == opens; ++k) {
      now += 10ms;
      link->on_timer(now);
    }
    ASSERT_GT(ev.opens, opens);
    waits.push_back(now - start);
    link->closed(CloseCause::Refused, "connection refused", now);  // still restarting
  }
  ASSERT_EQ(waits.size(), static_cast<std::size_t>(limits.max_failed_reconnects));
  EXPECT_GE(waits[0], 150ms);
  EXPECT_LE(waits[0], 260ms);
  EXPECT_GT(waits[1], waits[0]);
  EXPECT_GT(waits[2], waits[1]);
  EXPECT_TRUE(ev.udp.empty());  // kept for the next session so far
  // One more reconnect fails: what is queued goes by UDP as well.
  wait_out_backoff();
  ASSERT_EQ(link->state(), SessionState::Connecting);
  link->closed(CloseCause::Refused, "connection refused", now);
  EXPECT_EQ(ev.udp, std::vector<std::uint16_t>{1});
}

// An outage longer than the reconnects: a peer that held a session is never
// given up on (taken for UDP-only, it would get UDP for minutes after the
// link is back). Meanwhile every transaction goes by UDP at once and stays
// queued for the session; requests go by UDP only (answered once); the
// daemon's period paces the reconnects once the backoff has grown long, and
// the session that comes back carries what is queued.
TEST_F(SessionLinkTest, AnOutageSendsCopiesByUdpAndTheSessionComesBackWithThem) {
  // Transactions larger than a datagram (no copies of their own before).
  link->send(tx(1, 20), false, now);
  bring_up();
  drain();
  link->closed(CloseCause::Failed, "link down? nothing acknowledged", now);
  for (int i = 0; i <= limits.max_failed_reconnects; ++i) {
    wait_out_backoff();
    ASSERT_EQ(link->state(), SessionState::Connecting);
    link->closed(CloseCause::TimedOut, "no answer within the connect timeout", now);
  }
  EXPECT_EQ(ev.udp, std::vector<std::uint16_t>{1});
  EXPECT_EQ(link->state(), SessionState::Backoff);
  EXPECT_EQ(link->queued(), 1u);
  EXPECT_FALSE(link->finished());
  // What comes meanwhile: a copy at once, and queued.
  link->send(tx(2, 20), false, now);
  EXPECT_EQ(ev.udp, (std::vector<std::uint16_t>{1, 2}));
  EXPECT_EQ(link->queued(), 2u);
  wire::Request r;
  r.requested_type = 64;
  r.tx_id = 77;
  link->request(r, now);
  EXPECT_EQ(ev.udp_requests, std::vector<std::uint16_t>{77});
  EXPECT_EQ(link->requests_pending(), 0u);
  // Still failing: the same, a reconnect each period.
  int opens = ev.opens;
  now += 10s;
  link->keep_open(now);
  ASSERT_EQ(ev.opens, opens + 1);
  link->closed(CloseCause::TimedOut, "no answer within the connect timeout", now);
  EXPECT_EQ(ev.udp, (std::vector<std::uint16_t>{1, 2}));  // no copy again
  // The link is back: the daemon's next period reconnects at once, and the
  // session carries both transactions; what comes next goes on it alone.
  now += 10s;
  link->keep_open(now);
  ASSERT_EQ(ev.opens, opens + 2);
  link->connected(now);
  drain();
  feed(answer_hello());
  ASSERT_EQ(link->state(), SessionState::Up);
  EXPECT_EQ(txends(drain()), (std::vector<std::uint16_t>{1, 2}));
  link->send(tx(3, 20), false, now);
  EXPECT_EQ(ev.udp, (std::vector<std::uint16_t>{1, 2}));
  link->request(r, now);
  EXPECT_EQ(link->requests_pending(), 1u);
}

// A peer that took a session once and went silent for good (or an address
// an attacker answered once): reconnects at every period only for
// period_reconnects_for, then at the backoff alone.
TEST_F(SessionLinkTest, ADeadPeerIsReconnectedAtThePeriodOnlyForAWhile) {
  link->send(tx(1, 20), false, now);  // no UDP copy before the reconnects fail
  bring_up();
  drain();
  link->closed(CloseCause::Failed, "link down?", now);
  TimePoint degraded_at{};
  while (ev.udp.empty()) {
    wait_out_backoff();
    ASSERT_EQ(link->state(), SessionState::Connecting);
    link->closed(CloseCause::TimedOut, "no answer within the connect timeout", now);
    degraded_at = now;
  }
  int at_period = 0;
  int attempts = 0;
  for (TimePoint end = degraded_at + 10min; now < end;) {
    TimePoint tick = now + 10s;
    while (now < tick) {
      now += 100ms;
      link->on_timer(now);
      if (link->state() == SessionState::Connecting) {
        ++attempts;
        link->closed(CloseCause::TimedOut, "no answer within the connect timeout", now);
      }
    }
    int opens = ev.opens;
    link->keep_open(now);
    if (ev.opens > opens) {
      ++attempts;
      if (now - degraded_at >= limits.period_reconnects_for + 10s) ADD_FAILURE() << "at the period after the limit";
      ++at_period;
      link->closed(CloseCause::TimedOut, "no answer within the connect timeout", now);
    }
  }
  EXPECT_GE(at_period, 10);  // within the first two minutes
  // Ten minutes: a dozen at the period, then one per backoff_max (30 s).
  EXPECT_LE(attempts, 12 + 20 + 4);
  EXPECT_FALSE(link->finished());  // still the peer's link: kept in use
}

// UDP copies. A transaction that fits one datagram and is not acknowledged
// within udp_copy_after goes by UDP as well (here: its connect's SYN was
// lost), then again every udp_copy_again while still not acknowledged, at
// most udp_copies_max times; it stays queued for the session.
TEST_F(SessionLinkTest, ASmallTransactionNotAcknowledgedInAQuarterSecondIsCopiedByUdp) {
  link->send(tx(1), false, now);
  ASSERT_EQ(link->state(), SessionState::Connecting);
  EXPECT_EQ(link->deadline(), t0 + limits.udp_copy_after);
  now = t0 + limits.udp_copy_after - 10ms;
  link->on_timer(now);
  EXPECT_TRUE(ev.udp.empty());
  now = t0 + limits.udp_copy_after;
  link->on_timer(now);
  EXPECT_EQ(ev.udp, std::vector<std::uint16_t>{1});
  EXPECT_EQ(link->deadline(), now + limits.udp_copy_again);
  for (int k = 0; k < 500; ++k) {  // 5 s of a connect that does not finish
    now += 10ms;
    link->on_timer(now);
  }
  EXPECT_EQ(ev.udp.size(), static_cast<std::size_t>(limits.udp_copies_max));
  EXPECT_EQ(link->udp_copies(), static_cast<std::uint64_t>(limits.udp_copies_max));
  EXPECT_EQ(link->deadline(), std::nullopt);  // nothing more to do until the connect ends
  EXPECT_EQ(link->queued(), 1u);
  bring_up();
  EXPECT_EQ(txends(drain()), std::vector<std::uint16_t>{1});
  feed(wire::encode(wire::SessionAck{1, 1}));
  EXPECT_EQ(link->queued(), 0u);
  EXPECT_TRUE(std::any_of(ev.lines.begin(), ev.lines.end(), [](const std::string& l) {
    return l.find("not acknowledged within 250 ms (connecting): a copy by UDP") != std::string::npos;
  }));
}

TEST_F(SessionLinkTest, WhatIsAcknowledgedInTimeGetsNoCopy) {
  link->send(tx(1), false, now);
  bring_up();
  drain();
  now += limits.udp_copy_after - 1ms;
  feed(wire::encode(wire::SessionAck{1, 1}));
  for (int k = 0; k < 100; ++k) {
    now += 10ms;
    link->on_timer(now);
  }
  EXPECT_TRUE(ev.udp.empty());
  EXPECT_EQ(link->udp_copies(), 0u);
}

// No copy overtakes a transaction before it that cannot be copied (the
// peer would take an older value last); behind one copied, the rest are
// copied at once (they wait behind it on the stream).
TEST_F(SessionLinkTest, CopiesKeepTheOrderOfTheSession) {
  link->send(tx(1, 20), false, now);  // larger than a datagram
  link->send(tx(2), false, now);
  bring_up();
  EXPECT_EQ(txends(drain()), (std::vector<std::uint16_t>{1, 2}));
  now += 1s;
  link->on_timer(now);
  EXPECT_TRUE(ev.udp.empty());
  feed(wire::encode(wire::SessionAck{1, 1}));
  link->on_timer(now);
  EXPECT_EQ(ev.udp, std::vector<std::uint16_t>{2});
  link->send(tx(3), false, now);
  EXPECT_EQ(ev.udp, (std::vector<std::uint16_t>{2, 3}));
  // Both acknowledged: what comes next goes on the session alone.
  feed(wire::encode(wire::SessionAck{2, 1}));
  drain();
  feed(wire::encode(wire::SessionAck{3, 1}));
  link->send(tx(4), false, now);
  now += limits.udp_copy_after / 2;
  link->on_timer(now);
  EXPECT_EQ(ev.udp, (std::vector<std::uint16_t>{2, 3}));
}

// Given up on (the peer refuses sessions), what was copied is not sent by
// UDP once more; what was not, is. Copies are kept across a requeue.
TEST_F(SessionLinkTest, ACopiedTransactionIsNotSentAgainByUdpWhenTheLinkGivesUp) {
  link->send(tx(1), false, now);
  now += limits.udp_copy_after;
  link->on_timer(now);
  ASSERT_EQ(ev.udp, std::vector<std::uint16_t>{1});
  link->send(tx(2, 20), false, now);
  link->closed(CloseCause::Refused, "connection refused", now);
  EXPECT_EQ(ev.udp, (std::vector<std::uint16_t>{1, 2}));
  EXPECT_TRUE(link->finished());
}

// On a session that is up TCP resends what was lost itself: one copy. While
// the session is re-formed, more (up to udp_copies_max over the
// transaction's life, counted across sessions).
TEST_F(SessionLinkTest, OneCopyWhileUpMoreWhileTheSessionIsReformed) {
  link->send(tx(1), false, now);
  bring_up();
  drain();
  for (int k = 0; k < 300; ++k) {  // 3 s unacknowledged
    now += 10ms;
    link->on_timer(now);
  }
  EXPECT_EQ(ev.udp, std::vector<std::uint16_t>{1});
  link->closed(CloseCause::Closed, "reset by peer", now);
  wait_out_backoff();  // the second copy at once: the first is long past
  EXPECT_EQ(ev.udp.size(), 2u);
  for (int k = 0; k < 100; ++k) {  // a second of a connect that does not finish
    now += 10ms;
    link->on_timer(now);
  }
  ASSERT_EQ(link->state(), SessionState::Connecting);
  EXPECT_EQ(ev.udp.size(), static_cast<std::size_t>(limits.udp_copies_max));
  bring_up();
  EXPECT_EQ(txends(drain()), std::vector<std::uint16_t>{1});
  for (int k = 0; k < 300; ++k) {
    now += 10ms;
    link->on_timer(now);
  }
  EXPECT_EQ(ev.udp.size(), static_cast<std::size_t>(limits.udp_copies_max));
}

// A later transaction acknowledged: the one before it reached the peer too
// (its engine refused it), so it is not copied, and holds nothing up.
TEST_F(SessionLinkTest, ALaterAcknowledgementEndsTheCopiesOfWhatWentBefore) {
  link->send(tx(1), false, now);
  link->send(tx(2), false, now);
  bring_up();
  EXPECT_EQ(txends(drain()), (std::vector<std::uint16_t>{1, 2}));
  now += 100ms;
  feed(wire::encode(wire::SessionAck{2, 1}));
  for (int k = 0; k < 100; ++k) {
    now += 10ms;
    link->on_timer(now);
  }
  EXPECT_TRUE(ev.udp.empty());
  link->send(tx(3), false, now);
  EXPECT_TRUE(ev.udp.empty());
  EXPECT_EQ(link->awaiting_ack(), 1u);  // 1: dropped after dead_after, as before
}

// Through an outage (reconnects keep failing) a transaction gets one copy,
// small or not: more would go nowhere.
TEST_F(SessionLinkTest, AnOutageCopiesASmallTransactionOnce) {
  link->send(tx(1, 20), false, now);
  bring_up();
  drain();
  link->closed(CloseCause::Failed, "link down?", now);
  while (ev.udp.empty()) {
    wait_out_backoff();
    ASSERT_EQ(link->state(), SessionState::Connecting);
    link->closed(CloseCause::TimedOut, "no answer within the connect timeout", now);
  }
  link->send(tx(2), false, now);
  EXPECT_EQ(ev.udp, (std::vector<std::uint16_t>{1, 2}));
  for (int k = 0; k < 500; ++k) {
    now += 10ms;
    link->on_timer(now);
    if (link->state() == SessionState::Connecting)
      link->closed(CloseCause::TimedOut, "no answer within the connect timeout", now);
  }
  EXPECT_EQ(ev.udp, (std::vector<std::uint16_t>{1, 2}));
  EXPECT_EQ(link->queued(), 2u);
}

TEST_F(SessionLinkTest, NoCopiesWhenTheyAreOff) {
  limits.udp_copy_max_bytes = 0;
  link = std::make_unique<SessionLink>(ev, limits, 42);
  link->send(tx(1), false, now);
  for (int k = 0; k < 300; ++k) {
    now += 10ms;
    link->on_timer(now);
  }
  EXPECT_TRUE(ev.udp.empty());
  EXPECT_EQ(link->deadline(), std::nullopt);
}

// A peer that restarted hears our hello again at once (and, from a primary,
// learns that we are one), even if nothing was waiting to be sent.
TEST_F(SessionLinkTest, ABrokenSessionIsReformedWithNothingQueued) {
  link->send(tx(1), false, now);
  bring_up();
  drain();
  feed(wire::encode(wire::SessionAck{1, 1}));
  EXPECT_EQ(link->queued(), 0u);
  link->closed(CloseCause::Closed, "peer closed", now);
  EXPECT_FALSE(link->finished());
  now += 1s;
  link->on_timer(now);
  EXPECT_EQ(ev.opens, 2);
  link->connected(now, true);
  Bytes b;
  ASSERT_TRUE(link->next_packet(b, now));
  std::string error;
  auto f = wire::decode_session(b, error);
  ASSERT_TRUE(f);
  EXPECT_TRUE(f->hello.primary);
  feed(answer_hello());
  EXPECT_EQ(link->state(), SessionState::Up);
}

// A peer that takes sessions and never confirms cannot make us resend for
// ever: a transaction goes after max_sends sessions (or max_age).
TEST_F(SessionLinkTest, ATransactionNeverConfirmedIsDroppedAfterMaxSends) {
  link->send(tx(1), false, now);
  for (int i = 0; i < limits.max_sends; ++i) {
    bring_up();
    EXPECT_EQ(txends(drain()), std::vector<std::uint16_t>{1});
    now += limits.stable_after;  // up long enough: the backoff starts over
    feed(wire::encode(wire::SessionKeepalive{}));
    link->closed(CloseCause::Closed, "reset after reading", now);
    wait_out_backoff(50ms, 1000);
  }
  // Re-formed (a broken session is), but with nothing left to send.
  EXPECT_EQ(link->queued(), 0u);
  EXPECT_EQ(link->superseded(), 1u);
}

TEST_F(SessionLinkTest, QueuedWorkAndRequestsExpire) {
  wire::Request r;
  r.requested_type = 64;
  r.tx_id = 3;
  link->request(r, now);
  link->send(tx(1), false, now);
  link->closed(CloseCause::Refused, "refused", now);  // unknown peer: by UDP
  EXPECT_EQ(ev.udp_requests, std::vector<std::uint16_t>{3});
  // A peer that had a session, then stays away: after idle_close the link
  // forgets it instead of reconnecting for ever.
  link->send(tx(2), false, now);
  bring_up();
  drain();
  link->request(r, now);
  link->closed(CloseCause::Closed, "peer gone", now);
  now += limits.request_timeout;
  link->on_timer(now);
  EXPECT_EQ(link->requests_pending(), 0u);
  for (int k = 0; k < 100000 && !link->finished(); ++k) {
    now += 100ms;
    link->on_timer(now);
    if (link->state() == SessionState::Connecting)
      link->closed(CloseCause::TimedOut, "no answer", now);
  }
  EXPECT_TRUE(link->finished());
}

// A reset on our hello is a busy peer (at its connection limit) or a bad
// link, not the 2016 framing, which closes cleanly.
TEST_F(SessionLinkTest, AResetOnTheHelloIsNotTheLegacyFraming) {
  link->send(tx(1), false, now);
  link->connected(now);
  drain();
  link->closed(CloseCause::Failed, "connection reset by peer", now);
  EXPECT_TRUE(ev.learned_.empty());
  EXPECT_TRUE(ev.legacy.empty());
  EXPECT_EQ(ev.udp, std::vector<std::uint16_t>{1});
}

TEST_F(SessionLinkTest, KeepalivesWhenIdleAndASilentPeerIsDeadAfterThirtySeconds) {
  link->send(tx(1), false, now);
  bring_up();
  drain();
  now += limits.keepalive_every;
  link->on_timer(now);
  auto ka = drain();
  ASSERT_EQ(ka.size(), 1u);
  EXPECT_EQ(ka[0][0], static_cast<std::uint8_t>(wire::SessionType::Keepalive));
  // The peer's keepalives keep it alive; one lost frame is nothing (TCP
  // repeats it), only 30 s of silence ends the session.
  now += 20s;
  feed(wire::encode(wire::SessionKeepalive{}));
  now += 29s;
  link->on_timer(now);
  EXPECT_EQ(link->state(), SessionState::Up);
  now += 1s;
  link->on_timer(now);
  EXPECT_EQ(ev.closes, 1);
  EXPECT_EQ(link->state(), SessionState::Backoff);
}

TEST_F(SessionLinkTest, AnIdleSessionIsClosed) {
  link->send(tx(1), false, now);
  bring_up();
  drain();
  feed(wire::encode(wire::SessionAck{1, 1}));
  for (int i = 0; i < 13; ++i) {  // the peer's keepalives come every 10 s
    now += 10s;
    feed(wire::encode(wire::SessionKeepalive{}));
    link->on_timer(now);
    drain();
  }
  EXPECT_EQ(link->state(), SessionState::Idle);
  EXPECT_EQ(ev.closes, 1);
  EXPECT_TRUE(link->finished());
}

// A session formed ahead of its traffic: the first change finds it up.
TEST_F(SessionLinkTest, KeepOpenFormsASessionWithNothingQueuedAndHoldsItWhileSaid) {
  link->keep_open(now);
  EXPECT_EQ(ev.opens, 1);
  link->keep_open(now);  // said again: no second connection
  EXPECT_EQ(ev.opens, 1);
  bring_up();
  EXPECT_TRUE(drain().empty());
  // Said every period (10 s): never idle-closed, keepalives keep it alive.
  for (int i = 0; i < 30; ++i) {
    now += 10s;
    link->keep_open(now);
    feed(wire::encode(wire::SessionKeepalive{}));
    link->on_timer(now);
    drain();
  }
  EXPECT_EQ(link->state(), SessionState::Up);
  EXPECT_EQ(ev.closes, 0);
  // A change now goes at once, on the session that is already up.
  int wakes = ev.wakes;
  link->send(tx(7), false, now);
  EXPECT_GT(ev.wakes, wakes);
  EXPECT_EQ(txends(drain()), std::vector<std::uint16_t>{7});
  EXPECT_EQ(ev.opens, 1);
  // No longer said: closed once idle_close has passed with nothing sent.
  feed(wire::encode(wire::SessionAck{7, 1}));
  for (int i = 0; i < 13; ++i) {
    now += 10s;
    feed(wire::encode(wire::SessionKeepalive{}));
    link->on_timer(now);
    drain();
  }
  EXPECT_EQ(link->state(), SessionState::Idle);
  EXPECT_TRUE(link->finished());
}

TEST_F(SessionLinkTest, KeepOpenDuringBackoffReconnectsWithNothingQueued) {
  link->keep_open(now);
  bring_up();
  link->closed(CloseCause::Closed, "peer closed", now);
  ASSERT_EQ(link->state(), SessionState::Backoff);
  now += 1s;
  link->on_timer(now);
  ASSERT_EQ(ev.opens, 2);  // re-formed (it was up)
  link->closed(CloseCause::Refused, "refused", now);
  ASSERT_EQ(link->state(), SessionState::Backoff);
  link->keep_open(now);
  now += 2s;
  link->on_timer(now);
  EXPECT_EQ(ev.opens, 3);
  EXPECT_EQ(link->state(), SessionState::Connecting);
}

// An unknown peer that refuses: nothing queued goes anywhere, and the link
// is done (the transport marks the peer UDP-only, so it is not said again).
TEST_F(SessionLinkTest, KeepOpenToAPeerThatRefusesEndsIdle) {
  link->keep_open(now);
  link->closed(CloseCause::Refused, "refused", now);
  EXPECT_EQ(link->state(), SessionState::Idle);
  EXPECT_TRUE(ev.udp.empty());
  EXPECT_TRUE(link->finished());
}

TEST_F(SessionLinkTest, RequestsGoOnTheSessionAndAreResentIfItBreaksBeforeTheAnswer) {
  wire::Request r;
  r.requested_type = 64;
  r.tx_id = 11;
  link->request(r, now);
  bring_up();
  auto out = drain();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0][0], static_cast<std::uint8_t>(wire::Type::Request));
  link->closed(CloseCause::Closed, "reset", now);
  now += 1s;
  link->on_timer(now);
  bring_up();
  out = drain();
  ASSERT_EQ(out.size(), 1u);
  // The answer's txend ends the request.
  feed(wire::encode(wire::TxEnd{11, 0}));
  EXPECT_EQ(link->requests_pending(), 0u);
}

TEST_F(SessionLinkTest, MalformedFramesBreakTheSession) {
  link->send(tx(1), false, now);
  link->connected(now);
  drain();
  std::string error;
  EXPECT_FALSE(link->on_packet(wire::encode(wire::SessionAck{1, 1}), now, error));  // before up
  Bytes bad = answer_hello();
  bad[4] = 'X';  // no magic
  EXPECT_FALSE(link->on_packet(bad, now, error));
  wire::SessionHello not_answer;
  EXPECT_FALSE(link->on_packet(wire::encode(not_answer), now, error));
}

TEST(SessionResponder, AnswersTheHelloAcknowledgesAndKeepsAlive) {
  SessionLimits limits;
  SessionResponder r(limits);
  TimePoint now = TimePoint{} + 50s;
  std::string error;
  wire::SessionHello opener;
  opener.primary = true;
  ASSERT_TRUE(r.on_frame(wire::encode(opener), true, now, error)) << error;
  EXPECT_TRUE(r.active());
  EXPECT_TRUE(r.peer_primary());
  Bytes out;
  ASSERT_TRUE(r.next_frame(out, now));
  std::string e2;
  auto f = wire::decode_session(out, e2);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->type, wire::SessionType::Hello);
  EXPECT_TRUE(f->hello.answer);
  r.completed(9, 3);
  ASSERT_TRUE(r.next_frame(out, now));
  f = wire::decode_session(out, e2);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->ack.tx_id, 9);
  EXPECT_EQ(f->ack.packets, 3);
  now += limits.keepalive_every;
  EXPECT_EQ(r.on_timer(now), SessionResponder::Tick::Write);
  ASSERT_TRUE(r.next_frame(out, now));
  EXPECT_EQ(out[0], static_cast<std::uint8_t>(wire::SessionType::Keepalive));
  now += limits.dead_after;
  EXPECT_EQ(r.on_timer(now), SessionResponder::Tick::Dead);
}

TEST(SessionResponder, RefusesFramesOutOfPlace) {
  SessionLimits limits;
  TimePoint now{};
  std::string error;
  {
    SessionResponder r(limits);  // a hello that is not the stream's first packet
    EXPECT_FALSE(r.on_frame(wire::encode(wire::SessionHello{}), false, now, error));
  }
  {
    SessionResponder r(limits);  // a keepalive on a stream that is no session
    EXPECT_FALSE(r.on_frame(wire::encode(wire::SessionKeepalive{}), true, now, error));
  }
  {
    SessionResponder r(limits);
    ASSERT_TRUE(r.on_frame(wire::encode(wire::SessionHello{}), true, now, error));
    EXPECT_FALSE(r.on_frame(wire::encode(wire::SessionHello{}), false, now, error));
    SessionResponder r2(limits);
    ASSERT_TRUE(r2.on_frame(wire::encode(wire::SessionHello{}), true, now, error));
    EXPECT_FALSE(r2.on_frame(wire::encode(wire::SessionAck{1, 1}), false, now, error));
  }
}

TEST(SessionResponder, AnOpenerThatNeverReadsHoldsABoundedQueue) {
  SessionLimits limits;
  SessionResponder r(limits);
  TimePoint now{};
  std::string error;
  ASSERT_TRUE(r.on_frame(wire::encode(wire::SessionHello{}), true, now, error));
  for (std::uint16_t i = 0; i < 10000; ++i) r.completed(i, 1);
  std::size_t n = 0;
  Bytes out;
  while (r.next_frame(out, now)) ++n;
  EXPECT_EQ(n, SessionResponder::kMaxControl);
  EXPECT_EQ(r.dropped_acks(), 10000u + 1 - SessionResponder::kMaxControl);
}

// What makes a session evictable at the connection limit: its opener not
// using it (transactions completed, requests), keepalives or not.
TEST(SessionResponder, KeepalivesAloneDoNotCountAsUse) {
  SessionLimits limits;
  SessionResponder r(limits);
  TimePoint now = TimePoint{} + 100s;
  std::string error;
  ASSERT_TRUE(r.on_frame(wire::encode(wire::SessionHello{}), true, now, error));
  EXPECT_EQ(r.unused_for(now), Duration::zero());
  for (int i = 0; i < 20; ++i) {
    now += 10s;
    r.heard(now);
    ASSERT_TRUE(r.on_frame(wire::encode(wire::SessionKeepalive{}), false, now, error));
    EXPECT_NE(r.on_timer(now), SessionResponder::Tick::Dead);
  }
  EXPECT_EQ(r.unused_for(now), 200s);
  r.used(now);
  r.completed(1, 1);
  now += 5s;
  EXPECT_EQ(r.unused_for(now), 5s);
}

TEST(SessionResponder, RefreshesCountAsUseOnlyAfterATransaction) {
  SessionLimits limits;
  SessionResponder r(limits);
  TimePoint now = TimePoint{} + 100s;
  std::string error;
  ASSERT_TRUE(r.on_frame(wire::encode(wire::SessionHello{}), true, now, error));
  now += 150s;
  r.refreshed(now);  // before any transaction: a forger's cheap slot-holder
  EXPECT_EQ(r.unused_for(now), 150s);
  r.used(now);
  r.completed(1, 1);
  now += 150s;
  r.refreshed(now);
  EXPECT_EQ(r.unused_for(now), Duration::zero());
}

TEST(SessionFrames, RoundTripAndRefusals) {
  std::string error;
  wire::SessionHello h;
  h.answer = true;
  h.keepalive_seconds = 10;
  auto f = wire::decode_session(wire::encode(h), error);
  ASSERT_TRUE(f) << error;
  EXPECT_TRUE(f->hello.answer);
  EXPECT_EQ(f->hello.keepalive_seconds, 10);
  EXPECT_EQ(f->hello.version, wire::kSessionVersion);
  auto a = wire::decode_session(wire::encode(wire::SessionAck{0xabcd, 0x1234}), error);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->ack.tx_id, 0xabcd);
  EXPECT_EQ(a->ack.packets, 0x1234);
  // Longer frames of a later version keep working; cut ones do not.
  Bytes longer = wire::encode(h);
  longer.push_back(7);
  longer[3] = static_cast<std::uint8_t>(longer.size() - 4);
  EXPECT_TRUE(wire::decode_session(longer, error));
  Bytes cut = wire::encode(wire::SessionAck{1, 2});
  cut.pop_back();
  EXPECT_FALSE(wire::decode_session(cut, error));
  Bytes short_ack = {0xc9, 0, 0, 2, 0, 1};
  EXPECT_FALSE(wire::decode_session(short_ack, error));
  Bytes v0 = wire::encode(h);
  v0[8] = 0;
  EXPECT_FALSE(wire::decode_session(v0, error));
  Bytes wrong_version = wire::encode(wire::SessionKeepalive{});
  wrong_version[1] = 1;
  EXPECT_FALSE(wire::decode_session(wrong_version, error));
  Bytes push = {0, 0, 0, 4, 0, 1, 0, 0};
  EXPECT_FALSE(wire::decode_session(push, error));
}

}  // namespace
}  // namespace alfred::link
