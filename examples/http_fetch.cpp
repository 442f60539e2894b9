// Fetches many URLs concurrently over one pooled ClientSession and prints, for each, its status,
// its size and how long it took; the pool keeps at most 4 connections per host alive and reuses
// them.
//
//   http_fetch http://127.0.0.1:8080/ http://127.0.0.1:8080/a https://example.org/
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "weave/http.hpp"
#include "weave/weave.hpp"

namespace {

weave::Coro<void> fetch(weave::http::ClientSession& session, std::string url) {
  const auto start = weave::Clock::now();
  try {
    weave::http::ClientResponse r = co_await session.get(url);
    const std::string body = co_await r.read();
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(weave::Clock::now() - start);
    std::printf("%3d %8zu bytes %5lld ms  %s\n", r.status(), body.size(),
                static_cast<long long>(ms.count()), url.c_str());
  } catch (const std::exception& e) {
    std::printf("ERR %s: %s\n", url.c_str(), e.what());
  }
}

weave::Coro<int> fetch_all(std::vector<std::string> urls) {
  weave::http::ClientSessionOptions opts;
  opts.connector.limit_per_host = 4;
  opts.timeout.total = std::chrono::seconds(30);
  weave::http::ClientSession session(opts);
  std::vector<weave::Task<void>> tasks;
  tasks.reserve(urls.size());
  for (const std::string& url : urls) tasks.push_back(weave::create_task(fetch(session, url)));
  for (weave::Task<void>& t : tasks) co_await t;
  co_await session.close();
  co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s URL...\n", argv[0]);
    return 2;
  }
  return weave::run(fetch_all(std::vector<std::string>(argv + 1, argv + argc)));
}
