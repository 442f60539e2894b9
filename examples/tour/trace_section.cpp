// The tour's timeline: a small program (producers feeding a consumer through a queue, a gather of
// sleepers) recorded with weave::trace, written as Chrome trace-event JSON (ui.perfetto.dev opens
// it), then drawn as an SVG picture: a row per task, a box per step, a line per wake-up.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "sections.hpp"
#include "weave/trace.hpp"
#include "weave/weave.hpp"

namespace {

using namespace std::chrono_literals;
using weave::Coro;

Coro<void> producer(weave::Queue<int>& q, int n, std::chrono::milliseconds every) {
  for (int i = 0; i < n; ++i) {
    co_await weave::sleep(every);
    co_await q.put(i);
  }
}

Coro<int> consumer(weave::Queue<int>& q, int n) {
  int sum = 0;
  for (int i = 0; i < n; ++i) sum += co_await q.get();
  co_return sum;
}

Coro<int> sleeper(int ms) {
  co_await weave::sleep(std::chrono::milliseconds(ms));
  co_return ms;
}

Coro<int> traced_program() {
  weave::Queue<int> q(2);
  weave::EventLoop& loop = weave::get_running_loop();
  auto a = loop.create_task(producer(q, 6, 3ms), "producer-fast");
  auto b = loop.create_task(producer(q, 3, 7ms), "producer-slow");
  auto c = loop.create_task(consumer(q, 9), "consumer");
  auto naps = co_await weave::gather(sleeper(5), sleeper(10), sleeper(15));
  co_await a;
  co_await b;
  co_return co_await c + std::get<0>(naps) + std::get<1>(naps) + std::get<2>(naps);
}

/// The value of "key": in one event line of the trace (weave writes one event a line).
std::string field(const std::string& line, const std::string& key) {
  const std::string k = "\"" + key + "\":";
  auto p = line.find(k);
  if (p == std::string::npos) return {};
  p += k.size();
  if (line[p] == '"') {
    const auto end = line.find('"', p + 1);
    return line.substr(p + 1, end - p - 1);
  }
  const auto end = line.find_first_of(",}", p);
  return line.substr(p, end - p);
}

struct Slice {
  double ts, dur;
};
struct Flow {
  double from = -1, to = -1;
  std::string from_row, to_row;
};

/// Draws the trace's task steps as an SVG timeline; returns the number of slices drawn.
std::size_t draw(const std::string& json, const std::string& svg) {
  std::ifstream in(json);
  std::map<std::string, std::vector<Slice>> rows;
  std::vector<std::string> order;
  std::map<std::string, Flow> flows;
  std::vector<std::pair<double, std::string>> open;  // X slices by start: where a flow starts
  double end = 0;
  std::size_t slices = 0;
  for (std::string line; std::getline(in, line);) {
    const std::string ph = field(line, "ph");
    const double ts = std::atof(field(line, "ts").c_str());
    if (ph == "X" && field(line, "cat") == "task") {
      const std::string name = field(line, "name");
      const double dur = std::atof(field(line, "dur").c_str());
      if (rows.find(name) == rows.end()) order.push_back(name);
      rows[name].push_back({ts, dur});
      open.emplace_back(ts, name);
      end = std::max(end, ts + dur);
      ++slices;
    } else if (ph == "s") {
      Flow& f = flows[field(line, "id")];
      f.from = ts;
      // The slice it starts in: the latest one begun by then.
      for (auto it = open.rbegin(); it != open.rend(); ++it) {
        if (it->first <= ts) {
          f.from_row = it->second;
          break;
        }
      }
    } else if (ph == "f") {
      Flow& f = flows[field(line, "id")];
      f.to = ts;
      if (!open.empty()) f.to_row = open.back().second;
    }
  }
  const double width = 1000, row_h = 28, left = 130;
  const double scale = end > 0 ? (width - left - 20) / end : 1;
  std::map<std::string, double> y;
  for (std::size_t i = 0; i < order.size(); ++i) y[order[i]] = 30 + static_cast<double>(i) * row_h;
  std::ofstream out(svg);
  out << "<svg xmlns='http://www.w3.org/2000/svg' width='" << width << "' height='"
      << 60 + row_h * static_cast<double>(order.size())
      << "' font-family='sans-serif' font-size='12'>\n"
      << "<rect width='100%' height='100%' fill='white'/>\n"
      << "<text x='" << left << "' y='16'>task steps over " << end / 1000
      << " ms; lines are wake-ups (who woke whom)</text>\n";
  for (const std::string& name : order) {
    out << "<text x='4' y='" << y[name] + 16 << "'>" << name << "</text>\n"
        << "<line x1='" << left << "' x2='" << width - 20 << "' y1='" << y[name] + 20 << "' y2='"
        << y[name] + 20 << "' stroke='#ddd'/>\n";
    for (const Slice& s : rows[name]) {
      out << "<rect x='" << left + s.ts * scale << "' y='" << y[name] + 4 << "' width='"
          << std::max(1.5, s.dur * scale) << "' height='16' fill='#3b7dd8'/>\n";
    }
  }
  for (const auto& [id, f] : flows) {
    if (f.from < 0 || f.to < 0 || y.count(f.from_row) == 0 || y.count(f.to_row) == 0) continue;
    out << "<line x1='" << left + f.from * scale << "' y1='" << y[f.from_row] + 12 << "' x2='"
        << left + f.to * scale << "' y2='" << y[f.to_row] + 12
        << "' stroke='#e07b39' stroke-width='1'/>\n";
  }
  out << "</svg>\n";
  return slices;
}

}  // namespace

namespace tour {

Coro<void> trace_section() {
  std::puts("\n== a timeline: weave::trace, drawn as SVG");
  const auto dir = std::filesystem::temp_directory_path();
  const std::string json = (dir / ("weave-tour-" + std::to_string(::getpid()) + ".json")).string();
  const std::string svg = (dir / ("weave-tour-" + std::to_string(::getpid()) + ".svg")).string();
  weave::trace::Options options;
  options.path = json;
  weave::trace::start(options);
  const int result = co_await traced_program();
  const std::size_t events = weave::trace::stop();
  const std::size_t slices = draw(json, svg);
  std::printf("the program returned %d; %zu trace events, %zu task steps drawn\n", result, events,
              slices);
  std::printf("trace (open in ui.perfetto.dev): %s\n", json.c_str());
  std::printf("timeline (open in a browser):    %s\n", svg.c_str());
}

}  // namespace tour
