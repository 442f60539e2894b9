// The tour's call graph: a gather of sleepers under a TaskGroup, and print_call_graph of one of
// the sleepers, seen from a sibling task while everything waits (asyncio 3.14's text).
#include <cstdio>
#include <string>
#include <vector>

#include "sections.hpp"
#include "weave/weave.hpp"

namespace {

using namespace std::chrono_literals;
using weave::Coro;

Coro<void> fetch_all() {
  co_await weave::gather(tour::fetch(200), tour::fetch(300));
}

/// Waits until the others are asleep, then prints the graph of the first fetch.
Coro<void> inspect(weave::Task<void> fetcher) {
  for (int i = 0; i < 3; ++i) co_await weave::sleep(0s);
  for (const weave::TaskRef& t : weave::all_tasks()) {
    // gather's children are the first tasks numbered after this one.
    if (t.core()->id == fetcher.core()->id + 2) weave::print_call_graph(t);
  }
}

}  // namespace

namespace tour {

Coro<void> graph_section() {
  std::puts("\n== a call graph: print_call_graph of a gather under a TaskGroup");
  co_await weave::task_group([](weave::TaskGroup& tg) -> Coro<void> {
    weave::Task<void> fetcher = tg.create_task(fetch_all(), "fetch_all");
    tg.create_task(inspect(fetcher), "inspect");
    co_return;
  });
}

}  // namespace tour
