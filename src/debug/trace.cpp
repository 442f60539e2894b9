// Timelines in Chrome's trace-event JSON (ui.perfetto.dev, chrome://tracing). Each thread
// records into a ring buffer of its own (fixed-size events, allocated within the configured
// memory budget); stop() or a flight-recorder dump merges them into one file:
//   X  a task step or a callback (complete slice);      b/e  a task's lifetime (async track);
//   s/f  a wake-up, from the step that woke a task to the step it ran (a flow);  C  counters.
// Outside flight mode a full buffer drops new events (counted); in flight mode it overwrites the
// oldest, and a dump writes the last Options::flight_window, on a stall, a signal or a crash.

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "core/loop_impl.hpp"
#include "debug/debug_mode.hpp"
#include "weave/errors.hpp"

namespace weave::detail::dbg {

namespace {
struct Event {
  std::uint64_t ts;   ///< ns, Clock's epoch
  std::uint64_t dur;  ///< X: ns; C: the value; s/f: unused
  std::uint64_t id;   ///< b/e: task id; s/f: flow id
  const char* cat;    ///< a string literal
  char ph;
  char name[31];
};
static_assert(sizeof(Event) == 64);

struct Buffer {
  std::atomic_flag busy = ATOMIC_FLAG_INIT;
  /// Not value-initialised: a page is touched when the first event lands on it, so that a big
  /// buffer costs what it holds.
  std::unique_ptr<Event[]> ring;
  std::size_t capacity = 0;
  std::size_t next = 0, size = 0;
  std::uint64_t generation = 0;
  long tid = 0;
  void lock() noexcept {
    while (busy.test_and_set(std::memory_order_acquire)) std::this_thread::yield();
  }
  void unlock() noexcept { busy.clear(std::memory_order_release); }
};

std::atomic<std::uint64_t> g_generation{1};
std::atomic<std::uint64_t> g_dropped{0};
std::atomic<std::size_t> g_used{0};
std::mutex g_mutex;  // the buffers list, the options
std::vector<std::unique_ptr<Buffer>> g_buffers;
trace::Options g_options;
thread_local Buffer* t_buffer = nullptr;
thread_local std::uint64_t t_generation = 0;

Buffer* my_buffer() noexcept {
  const std::uint64_t gen = g_generation.load(std::memory_order_acquire);
  if (t_generation == gen) return t_buffer;
  std::lock_guard lock(g_mutex);
  t_generation = gen;
  t_buffer = nullptr;
  const std::size_t bytes = g_options.thread_buffer / sizeof(Event) * sizeof(Event);
  if (bytes == 0 || g_used.load() + bytes > g_options.memory_budget) return nullptr;
  try {
    auto b = std::make_unique<Buffer>();
    b->capacity = bytes / sizeof(Event);
    b->ring.reset(new Event[b->capacity]);
    b->generation = gen;
    b->tid = static_cast<long>(::syscall(SYS_gettid));
    t_buffer = b.get();
    g_buffers.push_back(std::move(b));
    g_used += bytes;
  } catch (...) {
  }
  return t_buffer;
}

void record(char ph, const char* cat, const std::string* name, std::uint64_t ts, std::uint64_t dur,
            std::uint64_t id) noexcept {
  Buffer* b = my_buffer();
  if (b == nullptr) {
    ++g_dropped;
    return;
  }
  b->lock();
  if (b->generation != g_generation.load(std::memory_order_relaxed)) {
    b->unlock();
    return;
  }
  if (b->size == b->capacity && !g_options.flight_recorder) {
    b->unlock();
    ++g_dropped;
    return;
  }
  Event& e = b->ring[b->next];
  e.ts = ts;
  e.dur = dur;
  e.id = id;
  e.cat = cat;
  e.ph = ph;
  const std::size_t n = name != nullptr ? std::min(name->size(), sizeof e.name - 1) : 0;
  if (n != 0) std::memcpy(e.name, name->data(), n);
  e.name[n] = '\0';
  if (++b->next == b->capacity) b->next = 0;
  if (b->size < b->capacity) {
    ++b->size;
  } else {
    ++g_dropped;  // overwritten (flight mode)
  }
  b->unlock();
}

std::uint64_t now_ns() noexcept {
  return static_cast<std::uint64_t>(Clock::now().time_since_epoch().count());
}

void json_string(std::FILE* f, const char* s) {
  std::fputc('"', f);
  for (; *s != '\0'; ++s) {
    const auto c = static_cast<unsigned char>(*s);
    if (c == '"' || c == '\\') {
      std::fputc('\\', f);
      std::fputc(c, f);
    } else if (c < 0x20) {
      std::fprintf(f, "\\u%04x", c);
    } else {
      std::fputc(c, f);
    }
  }
  std::fputc('"', f);
}

/// Writes the buffers' events (those after `since`) to `path`; the caller holds g_mutex.
std::size_t write_locked(const std::string& path, std::uint64_t since) {
  struct Item {
    long tid;
    Event e;
  };
  std::vector<Item> items;
  const double rate = ns_per_tick();
  for (auto& b : g_buffers) {
    b->lock();
    const std::size_t cap = b->capacity;
    const std::size_t first = (b->next + cap - b->size) % cap;
    for (std::size_t i = 0; i < b->size; ++i) {
      Event e = b->ring[(first + i) % cap];
      const std::uint64_t ts = ticks_to_ns(e.ts, rate);
      if (e.ph == 'X') e.dur = ticks_to_ns(e.ts + e.dur, rate) - ts;
      e.ts = ts;
      if (e.ts >= since) items.push_back({b->tid, e});
    }
    b->unlock();
  }
  // Keep what pairs: a flow needs its start and end, a lifetime's end its begin; a lifetime
  // still open gets its end at the end of the trace.
  std::set<std::uint64_t> starts, ends, begun, ended;
  std::uint64_t last = since;
  for (const Item& it : items) {
    if (it.e.ph == 's') starts.insert(it.e.id);
    if (it.e.ph == 'f') ends.insert(it.e.id);
    if (it.e.ph == 'b') begun.insert(it.e.id);
    if (it.e.ph == 'e') ended.insert(it.e.id);
    last = std::max(last, it.e.ts + (it.e.ph == 'X' ? it.e.dur : 0));
  }
  std::map<std::uint64_t, Item> open;
  std::vector<Item> kept;
  for (const Item& it : items) {
    const std::uint64_t id = it.e.id;
    if ((it.e.ph == 's' && ends.count(id) == 0) || (it.e.ph == 'f' && starts.count(id) == 0)) {
      continue;
    }
    if (it.e.ph == 'e' && begun.count(id) == 0) continue;
    if (it.e.ph == 'b' && ended.count(id) == 0) open.emplace(id, it);
    kept.push_back(it);
  }
  for (auto& [id, it] : open) {
    Item end = it;
    end.e.ph = 'e';
    end.e.ts = last;
    kept.push_back(end);
  }
  std::stable_sort(kept.begin(), kept.end(), [](const Item& a, const Item& b) {
    return a.tid != b.tid ? a.tid < b.tid : a.e.ts < b.e.ts;
  });
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) return 0;
  const std::uint64_t epoch =
      kept.empty() ? 0
                   : std::min_element(kept.begin(), kept.end(), [](const Item& a, const Item& b) {
                       return a.e.ts < b.e.ts;
                     })->e.ts;
  const long pid = static_cast<long>(::getpid());
  std::fprintf(f, "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n");
  std::fprintf(f,
               "{\"ph\":\"M\",\"pid\":%ld,\"tid\":0,\"name\":\"process_name\",\"args\":{"
               "\"name\":\"weave\"}}",
               pid);
  for (const Item& it : kept) {
    const Event& e = it.e;
    const double ts = static_cast<double>(e.ts - epoch) / 1000.0;
    std::fprintf(f, ",\n{\"ph\":\"%c\",\"pid\":%ld,\"tid\":%ld,\"ts\":%.3f,\"cat\":", e.ph, pid,
                 it.tid, ts);
    json_string(f, e.cat);
    std::fprintf(f, ",\"name\":");
    if (e.name[0] == '\0' && e.id != 0 && e.ph != 's' && e.ph != 'f') {
      std::fprintf(f, "\"Task-%llu\"", static_cast<unsigned long long>(e.id));
    } else {
      json_string(f, e.name);
    }
    switch (e.ph) {
      case 'X':
        std::fprintf(f, ",\"dur\":%.3f", static_cast<double>(e.dur) / 1000.0);
        break;
      case 'C':
        std::fprintf(f, ",\"args\":{\"value\":%lld}", static_cast<long long>(e.dur));
        break;
      case 'b':
      case 'e':
        std::fprintf(f, ",\"id\":\"0x%llx\"", static_cast<unsigned long long>(e.id));
        break;
      case 's':
        std::fprintf(f, ",\"id\":%llu", static_cast<unsigned long long>(e.id));
        break;
      case 'f':
        std::fprintf(f, ",\"id\":%llu,\"bp\":\"e\"", static_cast<unsigned long long>(e.id));
        break;
      default:
        break;
    }
    std::fputc('}', f);
  }
  std::fprintf(f, "\n]}\n");
  std::fclose(f);
  return kept.size();
}

std::uint64_t flight_since() {
  if (!g_options.flight_recorder) return 0;
  const auto window =
      static_cast<std::uint64_t>(std::chrono::nanoseconds(g_options.flight_window).count());
  const std::uint64_t now = now_ns();
  return now > window ? now - window : 0;
}

void on_crash(int sig) {
  // Best effort: writing a file is not async-signal-safe, but the process is dying anyway.
  static std::atomic<bool> once{false};
  if (!once.exchange(true) && g_mutex.try_lock()) {
    write_locked(g_options.path, flight_since());
    g_mutex.unlock();
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

int g_dump_pipe[2] = {-1, -1};
void on_dump_signal(int) {
  const int saved = errno;
  const char c = 'd';
  (void)!::write(g_dump_pipe[1], &c, 1);
  errno = saved;
}
}  // namespace

std::atomic<std::uint8_t> g_trace_bit{0};

namespace {
const std::string kWakeUp = "wake-up";
}

void trace_slice(const char* cat, std::uint32_t task_id, const std::string* name, std::uint64_t ts,
                 std::uint64_t end, std::uint64_t flow_in) noexcept {
  record('X', cat, name, ts, end - ts, task_id);
  if (flow_in != 0) record('f', "wake", &kWakeUp, ts, 0, flow_in);
}
void trace_task_begin(std::uint32_t id, const std::string* name, std::uint64_t ts) noexcept {
  record('b', "task", name, ts, 0, id);
}
void trace_task_end(std::uint32_t id, const std::string* name, std::uint64_t ts) noexcept {
  record('e', "task", name, ts, 0, id);
}
void trace_flow_start(std::uint64_t flow, std::uint64_t ts) noexcept {
  record('s', "wake", &kWakeUp, ts, 0, flow);
}
void trace_counter(const char* name, std::int64_t value, std::uint64_t ts) noexcept {
  const std::string n = name;  // counters are few (one a changed depth), and named short
  record('C', "loop", &n, ts, static_cast<std::uint64_t>(value), 0);
}
namespace {
/// "OP fd N", the slice's name, made at its begin and again at its end (the frame keeps only
/// the parts).
void record_io(char ph, const IoWaitTrace& w) noexcept {
  char buf[sizeof(Event::name)];
  std::snprintf(buf, sizeof buf, "%s fd %d", w.op, w.fd);
  try {
    const std::string name(buf);
    record(ph, "io", &name, ticks(), 0, w.id);
  } catch (...) {  // no memory for the name: the slice is lost, not the program
  }
}
}  // namespace

void trace_io_begin(IoWaitTrace& w, const char* op, int fd) noexcept {
  static std::atomic<std::uint64_t> ids{0};
  w.op = op;
  w.fd = fd;
  // Apart from task ids: the writer pairs begins and ends by id.
  w.id = (std::uint64_t{1} << 63) | ++ids;
  record_io('b', w);
}
void trace_io_end_recorded(IoWaitTrace& w) noexcept {
  record_io('e', w);
  w.id = 0;
}
void trace_stall_dump() noexcept {
  if (g_trace_bit.load() == 0) return;
  std::lock_guard lock(g_mutex);
  if (g_options.flight_recorder && g_options.dump_on_stall) {
    write_locked(g_options.path, flight_since());
  }
}

void env_trace() noexcept {
  static const bool started = [] {
    const char* path = std::getenv("WEAVE_TRACE");
    if (path == nullptr || *path == '\0' || trace::active()) return false;
    try {
      trace::Options o;
      o.path = path;
      trace::start(o);
      std::atexit([] {
        if (trace::active()) trace::stop();
      });
    } catch (...) {
      return false;
    }
    return true;
  }();
  (void)started;
}

bool env_debug() noexcept {
  static const bool on = [] {
    const char* v = std::getenv("WEAVE_DEBUG");
    return v != nullptr && *v != '\0' && std::strcmp(v, "0") != 0;
  }();
  return on;
}

bool env_stats() noexcept {
  static const bool on = [] {
    const char* v = std::getenv("WEAVE_STATS");
    const bool set = v != nullptr && *v != '\0' && std::strcmp(v, "0") != 0;
    if (set) init_ticks();
    return set;
  }();
  return on;
}

}  // namespace weave::detail::dbg

namespace weave::trace {

using namespace detail::dbg;

void start(Options options) {
  init_ticks();
  std::lock_guard lock(g_mutex);
  if (g_trace_bit.load() != 0) throw RuntimeError("a trace is already being recorded");
  g_generation.fetch_add(1);
  g_buffers.clear();
  g_used = 0;
  g_dropped = 0;
  g_options = std::move(options);
  if (g_options.flight_recorder) {
    if (g_options.dump_on_crash) {
      for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGABRT}) signal(sig, on_crash);
    }
    if (g_options.dump_signal != 0 && g_dump_pipe[0] < 0 && ::pipe2(g_dump_pipe, O_CLOEXEC) == 0) {
      std::thread([fd = g_dump_pipe[0]] {
        char c;
        while (::read(fd, &c, 1) == 1) {
          std::lock_guard l(g_mutex);
          if (g_trace_bit.load() != 0) write_locked(g_options.path, flight_since());
        }
      }).detach();
    }
    if (g_options.dump_signal != 0) signal(g_options.dump_signal, on_dump_signal);
  }
  g_trace_bit.store(kTrace);
  if (detail::LoopImpl* loop = detail::running_impl())
    loop->sync_trace_bit();  // others see it at their poll
}

std::size_t stop() {
  std::lock_guard lock(g_mutex);
  if (g_trace_bit.load() == 0) return 0;
  g_trace_bit.store(0);
  if (detail::LoopImpl* loop = detail::running_impl()) loop->sync_trace_bit();
  const std::size_t n = write_locked(g_options.path, flight_since());
  g_generation.fetch_add(1);  // buffers stay until the next start(): a writer may still hold one
  if (g_options.flight_recorder) {
    if (g_options.dump_on_crash) {
      for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGABRT}) signal(sig, SIG_DFL);
    }
    if (g_options.dump_signal != 0) signal(g_options.dump_signal, SIG_DFL);
  }
  return n;
}

bool active() noexcept {
  return g_trace_bit.load() != 0;
}

std::size_t dump(const std::string& path) {
  std::lock_guard lock(g_mutex);
  return write_locked(path.empty() ? g_options.path : path, flight_since());
}

std::size_t memory_used() noexcept {
  return g_used.load();
}
std::uint64_t dropped() noexcept {
  return g_dropped.load();
}

}  // namespace weave::trace
