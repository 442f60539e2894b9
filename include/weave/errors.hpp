#pragma once
/// \file errors.hpp
/// weave's exception hierarchy, asyncio's names. CancelledError deliberately sits outside
/// std::exception (as Python's derives from BaseException), so `catch (const std::exception&)`
/// never swallows a cancellation. OS errors are std::system_error carrying the errno.

#include <cstddef>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

namespace weave {

/// The operation was cancelled. Catch it only to clean up, then re-throw.
class CancelledError {
 public:
  CancelledError() = default;
  explicit CancelledError(std::string message) : message_(std::move(message)) {}
  /// The message given to `cancel(msg)`; empty when none was given.
  const std::string& message() const noexcept { return message_; }
  const char* what() const noexcept {
    return message_.empty() ? "CancelledError" : message_.c_str();
  }

 private:
  std::string message_;
};

/// What weave::run and Runner::run raise, after cancelling the main task, when a SIGINT (Ctrl-C)
/// interrupted it and the main task did not swallow the cancellation: asyncio.Runner's
/// KeyboardInterrupt. It is a CancelledError (the main task was cancelled), so it stays outside
/// std::exception and code that catches CancelledError around run() sees it too.
class KeyboardInterrupt : public CancelledError {
 public:
  KeyboardInterrupt() : CancelledError("KeyboardInterrupt") {}
};

/// Raised at a generator's co_yield by aclose() (Python's GeneratorExit). Like CancelledError it
/// is no std::exception: `catch (const std::exception&)` in a generator body lets it through.
class GeneratorExit {
 public:
  const char* what() const noexcept { return "GeneratorExit"; }
};

/// Base of weave's own errors, so that they can be caught together.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class TimeoutError : public Error {
 public:
  TimeoutError() : Error("TimeoutError") {}
  using Error::Error;
};

class InvalidStateError : public Error {
 public:
  using Error::Error;
};

class RuntimeError : public Error {
 public:
  using Error::Error;
};

/// Raised where asyncio raises ValueError: bad arguments, too many task_done(), ...
class ValueError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// A key or variable with no value (Python's LookupError): ContextVar::get() without a default.
class LookupError : public Error {
 public:
  using Error::Error;
};

/// readexactly()/readuntil() hit EOF first; `partial` holds what was read.
class IncompleteReadError : public Error {
 public:
  IncompleteReadError(std::string partial_bytes, std::size_t expected_bytes)
      : Error(std::to_string(partial_bytes.size()) + " bytes read on a total of " +
              std::to_string(expected_bytes) + " expected bytes"),
        partial(std::move(partial_bytes)),
        expected(expected_bytes) {}
  std::string partial;
  std::size_t expected;
};

/// The separator was not found within the reader's limit; `consumed` bytes are buffered.
class LimitOverrunError : public Error {
 public:
  LimitOverrunError(const std::string& message, std::size_t consumed_bytes)
      : Error(message), consumed(consumed_bytes) {}
  std::size_t consumed;
};

class QueueEmpty : public Error {
 public:
  QueueEmpty() : Error("QueueEmpty") {}
};

class QueueFull : public Error {
 public:
  QueueFull() : Error("QueueFull") {}
};

class QueueShutDown : public Error {
 public:
  QueueShutDown() : Error("QueueShutDown") {}
};

class BrokenBarrierError : public Error {
 public:
  BrokenBarrierError() : Error("BrokenBarrierError") {}
};

/// Several exceptions raised together (by a TaskGroup's children).
class ExceptionGroup : public Error {
 public:
  ExceptionGroup(const std::string& message, std::vector<std::exception_ptr> exceptions)
      : Error(message + " (" + std::to_string(exceptions.size()) + " sub-exception" +
              (exceptions.size() == 1 ? ")" : "s)")),
        message_(message),
        exceptions_(std::move(exceptions)) {}
  const std::vector<std::exception_ptr>& exceptions() const noexcept { return exceptions_; }
  /// The message given, without the count what() adds.
  const std::string& message() const noexcept { return message_; }

  /// Python's ExceptionGroup.split(type): (the exceptions that are an `E`, the others), each a
  /// group with this message and the nesting kept (nested groups are split in turn, empty ones
  /// dropped), or nullopt when empty. A group that is itself an `E` matches whole.
  template <class E>
  std::pair<std::optional<ExceptionGroup>, std::optional<ExceptionGroup>> split() const {
    if (is<E>(*this)) return {*this, std::nullopt};
    std::vector<std::exception_ptr> match;
    std::vector<std::exception_ptr> rest;
    for (const std::exception_ptr& e : exceptions_) {
      if (const ExceptionGroup* g = as_group(e)) {
        auto [m, r] = g->split<E>();
        if (m) match.push_back(std::make_exception_ptr(std::move(*m)));
        if (r) rest.push_back(std::make_exception_ptr(std::move(*r)));
      } else if (is<E>(e)) {
        match.push_back(e);
      } else {
        rest.push_back(e);
      }
    }
    return {derive(std::move(match)), derive(std::move(rest))};
  }
  /// Python's ExceptionGroup.subgroup(type): split<E>().first.
  template <class E>
  std::optional<ExceptionGroup> subgroup() const {
    return split<E>().first;
  }

 private:
  template <class E>
  static bool is(const ExceptionGroup& g) {
    if constexpr (std::is_polymorphic_v<E> && std::is_base_of_v<ExceptionGroup, E>) {
      return dynamic_cast<const E*>(&g) != nullptr;
    } else {
      return std::is_base_of_v<E, ExceptionGroup>;
    }
  }
  template <class E>
  static bool is(const std::exception_ptr& e) {
    try {
      std::rethrow_exception(e);
    } catch (const E&) {
      return true;
    } catch (...) {
      return false;
    }
  }
  static const ExceptionGroup* as_group(const std::exception_ptr& e) {
    try {
      std::rethrow_exception(e);
    } catch (const ExceptionGroup& g) {
      return &g;  // the exception object lives as long as `e`
    } catch (...) {
      return nullptr;
    }
  }
  std::optional<ExceptionGroup> derive(std::vector<std::exception_ptr> exceptions) const {
    if (exceptions.empty()) return std::nullopt;
    return ExceptionGroup(message_, std::move(exceptions));
  }

  std::string message_;
  std::vector<std::exception_ptr> exceptions_;
};

/// An executor can no longer run work.
class BrokenExecutor : public Error {
 public:
  using Error::Error;
};

/// A process-pool worker died; every pending future of the pool fails with this.
class BrokenProcessPool : public BrokenExecutor {
 public:
  using BrokenExecutor::BrokenExecutor;
};

/// The std::system_error for `errno`, with `what` naming the failed operation.
inline std::system_error os_error(int err, const char* what) {
  return std::system_error(err, std::generic_category(), what);
}

}  // namespace weave
