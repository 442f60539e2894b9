// The worker side of a ProcessPoolExecutor.
//
// A worker is this same program, started with kWorkerEnv naming its socket. Before main() runs
// (from a static initializer in process_pool.cpp, so it is linked whenever process pools are),
// enter_worker_mode_if_asked() notices the variable, removes it (so that processes the user's
// code starts are not workers), and serves: read the init frame and run the initializer, then
// loop reading call frames and writing replies. Calls are answered in order; replies to the
// calls that arrived together are written together. It never returns: on end-of-file (the pool
// closed the socket or went away) it flushes stdio and _exits, skipping static destructors of a
// main() that never ran. A crash simply ends the process; the pool sees end-of-file.

#include <cxxabi.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <typeinfo>

#include "concurrent/spin.hpp"
#include "concurrent/wire.hpp"
#include "weave/concurrent.hpp"

namespace weave::concurrent::detail {

namespace {

// How long a worker that answered everything watches its socket before blocking on it.
constexpr std::chrono::microseconds kIdleSpin{50};

std::string demangle(const char* name) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> out(abi::__cxa_demangle(name, nullptr, nullptr, &status),
                                             std::free);
  return status == 0 && out ? std::string(out.get()) : std::string(name);
}

[[noreturn]] void leave(int code) {
  std::fflush(nullptr);
  _exit(code);
}

class Channel {
 public:
  explicit Channel(int fd) : fd_(fd) {}

  /// The next call frame, reading as needed; leaves the process at end-of-file.
  std::string_view next() {
    std::string_view payload;
    while (!next_frame(in_, pos_, payload)) fill();
    return payload;
  }
  /// True if a whole frame is already buffered (so replies can wait to be batched).
  bool has_frame() const {
    std::size_t pos = pos_;
    std::string_view payload;
    return next_frame(in_, pos, payload);
  }
  void send(const std::string& out) {
    for (std::size_t done = 0; done < out.size();) {
      ssize_t n = ::write(fd_, out.data() + done, out.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) leave(1);  // the pool is gone
      done += static_cast<std::size_t>(n);
    }
  }

 private:
  void fill() {
    if (pos_ > 0) {  // drop what was consumed; views into it are no longer used
      in_.erase(0, pos_);
      pos_ = 0;
    }
    char buf[65536];
    ssize_t n = -1;
    // The next call often follows the last reply within microseconds: look for it without
    // blocking for a while, so that it needs no wake-up of this process.
    spin_until(
        [&] {
          n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
          return n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
        },
        kIdleSpin);
    while (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) {
      n = ::read(fd_, buf, sizeof buf);
    }
    if (n <= 0) leave(0);
    in_.append(buf, static_cast<std::size_t>(n));
  }

  int fd_;
  std::string in_;       // received bytes
  std::size_t pos_ = 0;  // first byte of in_ not consumed
};

void write_exception(std::string& out, std::size_t start, Reply kind) {
  out.resize(start);
  begin_frame(out);
  std::string message;
  std::string type = current_exception_type(message);
  Writer w(out);
  w.write_uint(static_cast<std::uint8_t>(kind));
  w.write_string(type);
  w.write_string(message);
}

void answer(std::string_view call, std::string& out) {
  std::size_t start = begin_frame(out);
  try {
    Reader in(call);
    auto entry = in.read<RemoteEntry>();
    Writer w(out);
    w.write_uint(static_cast<std::uint8_t>(Reply::Value));
    entry(in, w);
  } catch (...) {
    write_exception(out, start, Reply::Exception);
  }
  end_frame(out, start);
}

[[noreturn]] void serve(int fd) {
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  Channel channel(fd);
  std::string out;
  {
    std::size_t start = begin_frame(out);
    try {
      Reader init(channel.next());
      if (init.next_is_nil()) {
        init.read_nil();
      } else {
        init.read<void (*)()>()();
      }
      out.clear();
    } catch (...) {
      write_exception(out, start, Reply::InitFailed);
      end_frame(out, start);
      channel.send(out);
      leave(1);
    }
  }
  for (;;) {
    out.clear();
    do {
      answer(channel.next(), out);
    } while (channel.has_frame());
    channel.send(out);
  }
}

}  // namespace

std::string current_exception_type(std::string& message) {
  try {
    throw;
  } catch (const std::exception& e) {
    message = e.what();
    return demangle(typeid(e).name());
  } catch (const CancelledError& e) {
    message = e.message();
    return "weave::CancelledError";
  } catch (...) {
    const std::type_info* type = abi::__cxa_current_exception_type();
    message.clear();
    return type ? demangle(type->name()) : "unknown exception";
  }
}

int enter_worker_mode_if_asked() noexcept {
  const char* value = std::getenv(kWorkerEnv);
  if (value == nullptr) return 0;
  int fd = std::atoi(value);
  ::unsetenv(kWorkerEnv);
  serve(fd);
}

}  // namespace weave::concurrent::detail
