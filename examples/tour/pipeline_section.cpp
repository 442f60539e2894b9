// The tour's data pipeline: a large file's lines read by an async generator, parsed on the loop,
// batched into a bounded queue, a CPU-heavy stage on a ProcessPoolExecutor, and the results
// aggregated; measured against the same work done serially. The bounded queue keeps at most
// kQueued batches (plus one per worker) in memory, however large the file.
#include <unistd.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "pipeline_stages.hpp"
#include "sections.hpp"
#include "weave/weave.hpp"

namespace {

using namespace pipeline;  // NOLINT(google-build-using-namespace)
using weave::Coro;

double serial(const std::string& path) {
  std::ifstream in(path);
  std::vector<int> batch;
  double total = 0;
  for (std::string line; std::getline(in, line);) {
    batch.push_back(std::stoi(line));
    if (batch.size() == kBatch) total += crunch(std::exchange(batch, {}));
  }
  if (!batch.empty()) total += crunch(std::move(batch));
  return total;
}

}  // namespace

namespace tour {

Coro<void> pipeline_section() {
  const int workers = static_cast<int>(std::max(2u, std::thread::hardware_concurrency()));
  std::printf("\n== pipeline: %d lines -> parse -> queue(%d batches) -> %d processes -> sum\n",
              kLines, kQueued, workers);
  const std::string path = write_input();
  auto t0 = weave::Clock::now();
  const double expected = serial(path);
  const double serial_ms = since(t0);

  weave::concurrent::ProcessPoolExecutor pool(workers);
  std::vector<int> warm_up(1, 1);  // the workers are up before timing
  co_await weave::get_running_loop().run_in_executor(&pool, &crunch, std::move(warm_up));
  t0 = weave::Clock::now();
  weave::Queue<std::vector<int>> q(kQueued);
  auto producer = weave::create_task(batch_into(parsed(file_lines(path)), q));
  std::vector<weave::Task<double>> stages;
  for (int i = 0; i < workers; ++i) stages.push_back(weave::create_task(crunch_batches(q, pool)));
  double total = 0;
  for (auto& stage : stages) total += co_await stage;
  co_await producer;
  const double pipeline_ms = since(t0);
  std::filesystem::remove(path);
  std::printf("serial:   %6.0f ms  (sum %.1f)\n", serial_ms, expected);
  std::printf("pipeline: %6.0f ms  (%.1fx; sum %s)\n", pipeline_ms, serial_ms / pipeline_ms,
              std::abs(total - expected) < 1e-6 * expected ? "matches" : "DIFFERS");
}

}  // namespace tour
