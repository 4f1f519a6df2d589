#include "gpsd/gpsd_server.hpp"

#include <gps.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <thread>

#include "vis/unix_client.hpp"

namespace alfred::gpsd {
namespace {

using Clock = std::chrono::steady_clock;

std::string now_iso8601() {
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  char buf[32] = {};  // upstream: JSON_DATE_MAX + 1 = 25 bytes
  timespec_to_iso8601(now, buf, 25);
  return buf;
}

class Gpsd {
 public:
  ~Gpsd() { close(); }
  bool connected() const { return open_; }
  int fd() const { return data_.gps_fd; }

  void connect(const SourceSpec& spec) {
    if (gps_open(spec.server.c_str(), spec.port.c_str(), &data_) != 0) return;
    open_ = true;
    unsigned flags = WATCH_ENABLE | WATCH_JSON;
    if (spec.device) flags |= WATCH_DEVICE;
    gps_stream(&data_, flags, spec.device ? const_cast<char*>(spec.device->c_str()) : nullptr);
    lines_.reset();
  }

  void close() {
    if (!open_) return;
    gps_close(&data_);
    open_ = false;
  }

  // Reads what gpsd sent; keeps the newest TPV report in `tpv`.
  void read(std::string& tpv) {
    std::uint8_t buf[4096];
    const ssize_t n = ::read(data_.gps_fd, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
    if (n <= 0) {
      close();
      return;
    }
    const bool ok = lines_.feed(std::span(buf, static_cast<std::size_t>(n)), [&](std::string_view line) {
      if (is_tpv(line)) tpv.assign(line);
    });
    if (!ok) close();
  }

 private:
  gps_data_t data_{};
  bool open_ = false;
  LineReader lines_;
};

}  // namespace

void run_server(const ServerOptions& o) {
  std::string tpv(kInitTpv);
  std::uint16_t tx_id = 0;
  Gpsd gpsd;
  const auto interval =
      std::chrono::seconds(o.static_location ? kStaticIntervalSeconds : kGpsdIntervalSeconds);
  for (;;) {
    if (o.static_location) tpv = static_tpv(o.location, now_iso8601());
    ++tx_id;
    tools::publish(o.unix_path, tools::push_packet(tx_id, kGpsdType, kGpsdVersion, encode(tpv)));
    if (!o.static_location && !gpsd.connected()) gpsd.connect(o.source);

    const auto deadline = Clock::now() + interval;
    for (;;) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) break;
      if (!gpsd.connected()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(left));
        continue;
      }
      pollfd pfd{gpsd.fd(), POLLIN, 0};
      const int rc = ::poll(&pfd, 1, static_cast<int>(left));
      if (rc < 0) {
        if (errno != EINTR) std::perror("select error");
        continue;
      }
      if (rc > 0) gpsd.read(tpv);
    }
  }
}

}  // namespace alfred::gpsd
