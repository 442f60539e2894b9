// The stages of examples/pipeline.cpp and of the tour's pipeline section: a file's lines from
// an async generator, parsed on the loop by another, batched into a bounded queue, crunched on a
// ProcessPoolExecutor (the CPU-heavy stage) and summed.
#pragma once

#include <unistd.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "weave/weave.hpp"

namespace pipeline {
using weave::AsyncGenerator;
using weave::Coro;

constexpr int kLines = 400'000;
constexpr std::size_t kBatch = 20'000;
constexpr int kQueued = 2;
constexpr int kWork = 200;  // sqrt rounds per number: the CPU-heavy stage

// A plain function: ProcessPoolExecutor sends it to a worker process by address.
inline double crunch(std::vector<int> numbers) {
  double acc = 0;
  for (int n : numbers) {
    for (int k = 1; k <= kWork; ++k) acc += std::sqrt(static_cast<double>(n + k)) / k;
  }
  return acc;
}

inline AsyncGenerator<std::string> file_lines(std::string path) {
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

inline AsyncGenerator<int> parsed(AsyncGenerator<std::string> lines) {
  while (auto line = co_await lines.next()) {
    int v = 0;
    auto [end, err] = std::from_chars(line->data(), line->data() + line->size(), v);
    if (err == std::errc()) co_yield v;
  }
}

inline Coro<void> batch_into(AsyncGenerator<int> numbers, weave::Queue<std::vector<int>>& q) {
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

inline Coro<double> crunch_batches(weave::Queue<std::vector<int>>& q,
                                   weave::concurrent::ProcessPoolExecutor& pool) {
  double total = 0;
  auto batches = q.items();
  while (auto batch = co_await batches.next()) {
    total += co_await weave::get_running_loop().run_in_executor(&pool, &crunch, std::move(*batch));
  }
  co_return total;
}

inline std::string write_input() {
  std::string path =
      (std::filesystem::temp_directory_path() / ("weave-tour-" + std::to_string(::getpid())))
          .string();
  std::ofstream out(path);
  for (int i = 0; i < kLines; ++i) out << (static_cast<long long>(i) * 7919) % 100000 << '\n';
  return path;
}
}  // namespace pipeline
