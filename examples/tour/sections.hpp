// The tour's sections that live in files of their own, one per service or capability, so that
// each grows without touching the others. examples/tour.cpp runs them in this order.
#pragma once

#include "weave/weave.hpp"

namespace tour {
double since(weave::Clock::time_point t0);
/// A stand-in for a request that takes `ms` (the call-graph sections' sleeper).
weave::Coro<void> fetch(int ms);
/// An HTTP server and its client, concurrent requests against sequential ones.
weave::Coro<void> http_section();
/// PostgreSQL on a throw-away server (examples/tour/pg_section.cpp).
weave::Coro<void> pg_section();
/// Lines of a file through async generators, a bounded queue and a process pool, vs serially.
weave::Coro<void> pipeline_section();
/// A small program's timeline recorded with weave::trace and drawn as an SVG picture.
weave::Coro<void> trace_section();
/// print_call_graph of a gather under a TaskGroup (examples/tour/graph_section.cpp).
weave::Coro<void> graph_section();
/// `weave pstree` of the tour itself while its loop is blocked (examples/tour/ps_section.cpp).
weave::Coro<void> ps_section();
}  // namespace tour
