#pragma once
// What the protocol core asks the outside world to do. The daemon implements
// this with sockets and timers; tests implement it with vectors.
#include <bitset>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "engine/route.hpp"
#include "store/record.hpp"
#include "wire/packet.hpp"
#include "wire/push_encoder.hpp"

namespace alfred {

// A periodic push (secondary to primary, primary to primary) or the answer to
// a request. Answers go back the way the request came.
// Sync: a periodic full sync. Prompt: what changed (or a secondary's data
// for a primary it just adopted), sent soon after the change; the transport
// delivers these reliably where it can, as they carry what is new. Reply: an
// answer to a request.
enum class PushKind { Sync, Prompt, Reply };

class Effects {
 public:
  virtual ~Effects() = default;

  // One small packet (announce, request, txend) as a datagram.
  virtual void send_packet(const Route& to, std::vector<std::uint8_t> packet) = 0;
  // A whole transaction. For a sync the transport picks UDP or TCP; a reply
  // goes on the stream the request came on (`to.stream`), else by UDP.
  virtual void send_push(const Route& to, wire::PushEncoder transaction, PushKind kind) = 0;
  // A client request forwarded to a primary; the answer comes back as a
  // transaction with the request's id.
  virtual void forward_request(const Route& to, const wire::Request& request) = 0;
  // Traffic to this server is expected soon (our primary; a primary just
  // heard): a transport with sessions has one ready, so that the next change
  // does not wait for a handshake. Said again every period while it holds.
  virtual void keep_session(const Route& to) { (void)to; }

  // Unix-socket replies; the client connection is closed after each.
  virtual void reply_records(ClientId client, Snapshot records, std::uint16_t tx_id) = 0;
  virtual void reply_error(ClientId client, std::uint16_t tx_id) = 0;
  virtual void event(std::uint8_t type, const Mac& source) = 0;

  virtual void run_update_command(const std::bitset<256>& types) = 0;
  virtual void reconfigure_interfaces(const std::vector<std::string>& names) = 0;

  // Diagnostics for verbose mode.
  virtual void log(std::string_view message) = 0;
  // Whether log() shows anything: lines made per packet or per transaction
  // are only built then.
  virtual bool logging() const { return true; }
};

// Link quality towards primaries, used by secondaries to pick one.
class TqSource {
 public:
  virtual ~TqSource() = default;
  // TQ per server MAC; servers missing from the result count as 0. `ok` false
  // when the batman-adv interface could not be queried.
  virtual std::map<Mac, std::uint8_t> tq(const std::string& bat_iface,
                                         const std::vector<Mac>& servers, bool& ok) = 0;
  // Every address batman-adv's global translation table holds: the nodes
  // really in the mesh, which a forged announcement cannot add itself to.
  // Asked only while a primary table is full. `ok` false when it could not be
  // queried (also for a source without batman-adv).
  virtual std::set<Mac> mesh_addresses(const std::string& bat_iface, bool& ok) {
    (void)bat_iface;
    ok = false;
    return {};
  }
};

}  // namespace alfred
