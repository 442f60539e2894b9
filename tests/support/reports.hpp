#pragma once
// Captures what the running loop's exception handler receives, for tests of the reports the loop
// makes (unretrieved exceptions, failing callbacks). The handler is removed again on destruction.

#include <optional>
#include <string>
#include <vector>

#include "weave/weave.hpp"

namespace weave_test {

struct Reports {
  std::vector<std::string> messages;
  std::vector<std::exception_ptr> exceptions;
  std::vector<std::optional<weave::TaskRef>> tasks;  ///< the task each report names, if any
  weave::EventLoop* loop = nullptr;

  /// Installs the collecting handler on `target` (the running loop by default).
  void install(weave::EventLoop* target = nullptr) {
    loop = target != nullptr ? target : &weave::get_running_loop();
    loop->set_exception_handler([this](weave::EventLoop&, const weave::ExceptionContext& ctx) {
      messages.push_back(ctx.message);
      exceptions.push_back(ctx.exception);
      tasks.push_back(ctx.task);
    });
  }
  /// Whether some report's message contains `text`.
  bool contains(const std::string& text) const {
    for (const std::string& m : messages) {
      if (m.find(text) != std::string::npos) return true;
    }
    return false;
  }

  Reports() = default;
  Reports(const Reports&) = delete;
  Reports& operator=(const Reports&) = delete;
  ~Reports() {
    if (loop != nullptr && !loop->is_closed()) loop->set_exception_handler(nullptr);
  }
};

}  // namespace weave_test
