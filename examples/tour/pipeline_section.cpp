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

#include "sections.hpp"
#include "weave/weave.hpp"

namespace {

using weave::AsyncGenerator;
using weave::Coro;

constexpr int kLines = 400'000;
constexpr std::size_t kBatch = 20'000;
constexpr int kQueued = 2;
constexpr int kWork = 200;  // sqrt rounds per number: the CPU-heavy stage

// A plain function: ProcessPoolExecutor sends it to a worker process by address.
double crunch(std::vector<int> numbers) {
  double acc = 0;
  for (int n : numbers) {
    for (int k = 1; k <= kWork; ++k) acc += std::sqrt(static_cast<double>(n + k)) / k;
  }
  return acc;
}

AsyncGenerator<std::string> file_lines(std::string path) {
  weave::File f = co_await weave::File::open(path, "r");
  std::string pending;
  for (;;) {
    std::string chunk = co_await f.read(64 * 1024);
    if (chunk.empty()) break;
    pending += chunk;
    std::size_t start = 0;
    for (std::size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
      co_yield pending.substr(start, nl - start);
    }
    pending.erase(0, start);
  }
  if (!pending.empty()) co_yield std::move(pending);
  co_await f.close();
}

AsyncGenerator<int> parsed(AsyncGenerator<std::string> lines) {
  while (auto line = co_await lines.next()) {
    int v = 0;
    auto [end, err] = std::from_chars(line->data(), line->data() + line->size(), v);
    if (err == std::errc()) co_yield v;
  }
}

Coro<void> batch_into(AsyncGenerator<int> numbers, weave::Queue<std::vector<int>>& q) {
  std::vector<int> batch;
  while (auto v = co_await numbers.next()) {
    batch.push_back(*v);
    if (batch.size() == kBatch) {
      std::vector<int> full;
      full.swap(batch);
      co_await q.put(std::move(full));
    }
  }
  if (!batch.empty()) co_await q.put(std::move(batch));
  q.shutdown();
}

Coro<double> crunch_batches(weave::Queue<std::vector<int>>& q,
                            weave::concurrent::ProcessPoolExecutor& pool) {
  double total = 0;
  auto batches = q.items();
  while (auto batch = co_await batches.next()) {
    total += co_await weave::get_running_loop().run_in_executor(&pool, &crunch, std::move(*batch));
  }
  co_return total;
}

std::string write_input() {
  std::string path =
      (std::filesystem::temp_directory_path() / ("weave-tour-" + std::to_string(::getpid())))
          .string();
  std::ofstream out(path);
  for (int i = 0; i < kLines; ++i) out << (static_cast<long long>(i) * 7919) % 100000 << '\n';
  return path;
}

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
