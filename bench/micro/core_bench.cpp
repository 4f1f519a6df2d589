// In-process costs of the protocol core: decoding, encoding a transaction
// from a snapshot, stream reassembly, and store snapshots.
#include <benchmark/benchmark.h>

#include "store/store.hpp"
#include "wire/packet.hpp"
#include "wire/push_encoder.hpp"
#include "wire/stream_reader.hpp"

namespace {

using namespace alfred;

Mac mac_of(std::uint32_t n) {
  return Mac{0x02, 0, static_cast<std::uint8_t>(n >> 24), static_cast<std::uint8_t>(n >> 16),
             static_cast<std::uint8_t>(n >> 8), static_cast<std::uint8_t>(n)};
}

Store make_store(std::size_t records, std::size_t size) {
  Store s;
  for (std::size_t i = 0; i < records; ++i)
    s.set_local(Record{mac_of(static_cast<std::uint32_t>(i)), 64, 0, std::vector<std::uint8_t>(size, 'x')},
                 TimePoint{});
  return s;
}

void BM_EncodeTransaction(benchmark::State& state) {
  auto store = make_store(static_cast<std::size_t>(state.range(0)), 1000);
  auto snap = std::make_shared<const Snapshot>(store.snapshot(Source::Synced));
  std::vector<std::uint8_t> out;
  std::size_t bytes = 0;
  for (auto _ : state) {
    auto enc = wire::PushEncoder::shared(snap, 1, true);
    while (enc.next(out)) bytes += out.size();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
}
BENCHMARK(BM_EncodeTransaction)->Arg(10)->Arg(1000)->Arg(10000);

void BM_DecodePush(benchmark::State& state) {
  auto store = make_store(60, 1000);
  wire::PushEncoder enc(store.snapshot(Source::Synced), 1, false);
  std::vector<std::uint8_t> packet;
  enc.next(packet);
  for (auto _ : state) {
    auto d = wire::decode(packet);
    benchmark::DoNotOptimize(d);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * packet.size()));
}
BENCHMARK(BM_DecodePush);

void BM_StreamReader(benchmark::State& state) {
  auto store = make_store(300, 1000);
  wire::PushEncoder enc(store.snapshot(Source::Synced), 1, true);
  std::vector<std::uint8_t> stream, p;
  while (enc.next(p)) stream.insert(stream.end(), p.begin(), p.end());
  const std::size_t chunk = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    wire::StreamReader r;
    std::size_t packets = 0;
    for (std::size_t pos = 0; pos < stream.size(); pos += chunk)
      r.feed(std::span(stream).subspan(pos, std::min(chunk, stream.size() - pos)),
             [&](std::span<const std::uint8_t>) { ++packets; });
    benchmark::DoNotOptimize(packets);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * stream.size()));
}
BENCHMARK(BM_StreamReader)->Arg(1448)->Arg(16384);

void BM_SnapshotOfType(benchmark::State& state) {
  Store s;
  for (std::uint32_t t = 64; t < 74; ++t)
    for (std::uint32_t i = 0; i < static_cast<std::uint32_t>(state.range(0)); ++i)
      s.set_local(Record{mac_of(i), static_cast<std::uint8_t>(t), 0, std::vector<std::uint8_t>(100, 'x')},
                  TimePoint{});
  for (auto _ : state) {
    auto snap = s.snapshot(Source::Synced, 70);
    benchmark::DoNotOptimize(snap);
  }
}
BENCHMARK(BM_SnapshotOfType)->Arg(10)->Arg(1000)->Arg(10000);

}  // namespace

BENCHMARK_MAIN();
