// Backend choice at run time: WEAVE_BACKEND forces one; otherwise io_uring when the kernel
// allows a ring (it may be disabled by sysctl or seccomp), else epoll, which always works.

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "io/backend.hpp"

namespace weave::io {

#ifndef WEAVE_HAVE_URING
std::unique_ptr<Backend> make_uring_backend() {
  return nullptr;
}
#endif

std::unique_ptr<Backend> make_backend() {
  const char* forced = std::getenv("WEAVE_BACKEND");
  if (forced != nullptr && std::strcmp(forced, "epoll") == 0) return make_epoll_backend();
  if (auto uring = make_uring_backend()) return uring;
  if (forced != nullptr && std::strcmp(forced, "uring") == 0) {
    static bool warned = false;
    if (!warned) {
      warned = true;
      std::fprintf(stderr, "weave: WEAVE_BACKEND=uring but io_uring is unavailable; using epoll\n");
    }
  }
  return make_epoll_backend();
}

}  // namespace weave::io
