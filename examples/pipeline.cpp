// pipeline: a data pipeline built from async generators. A file's lines are read by one
// generator, parsed on the loop by another, batched into a bounded queue, crunched on a
// ProcessPoolExecutor (the CPU-heavy stage) and summed. The bounded queue keeps at most kQueued
// batches (plus one per worker) in memory, however large the file.
// usage: pipeline [FILE]   (one integer per line; without FILE, a sample file is written first)
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "pipeline_stages.hpp"
#include "weave/weave.hpp"

namespace {
using namespace pipeline;  // NOLINT(google-build-using-namespace)
using weave::Coro;

Coro<double> run_pipeline(std::string path) {
  const int workers = static_cast<int>(std::max(2u, std::thread::hardware_concurrency()));
  weave::concurrent::ProcessPoolExecutor pool(workers);
  weave::Queue<std::vector<int>> q(kQueued);
  auto producer = weave::create_task(batch_into(parsed(file_lines(std::move(path))), q));
  std::vector<weave::Task<double>> stages;
  for (int i = 0; i < workers; ++i) stages.push_back(weave::create_task(crunch_batches(q, pool)));
  double total = 0;
  for (auto& stage : stages) total += co_await stage;
  co_await producer;
  co_return total;
}

}  // namespace

int main(int argc, char** argv) {
  const bool sample = argc < 2;
  const std::string path = sample ? write_input() : argv[1];
  auto t0 = weave::Clock::now();
  const double total = weave::run(run_pipeline(path));
  const double ms = std::chrono::duration<double, std::milli>(weave::Clock::now() - t0).count();
  if (sample) std::filesystem::remove(path);
  std::printf("sum %.3f in %.0f ms\n", total, ms);
  return 0;
}
