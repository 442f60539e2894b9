#pragma once
// The protocol between a ProcessPoolExecutor and its workers, over one socketpair per worker.
//
// Frames: a 4-byte length (host order: both ends are the same program on the same machine)
// and that many payload bytes, a sequence of Writer items. Parent -> worker: first an init
// frame (the initializer's code address, or nil), then call frames (see
// concurrent_portable.hpp). Worker -> parent: one reply per call, in call order, so the parent
// matches replies to calls by position and no ids travel. A reply starts with its Reply kind.
// The worker never writes anything else; it exits on end-of-file.

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace weave::concurrent::detail {

/// Set in a worker's environment to the number of its socket descriptor.
inline constexpr const char* kWorkerEnv = "WEAVE_CONCURRENT_WORKER";

enum class Reply : std::uint8_t {
  Value = 0,       // followed by the call's result
  Exception = 1,   // followed by type name and message
  InitFailed = 2,  // the initializer threw (type name, message); the worker then exits
};

/// Reserves a frame's length field; returns where the frame starts.
inline std::size_t begin_frame(std::string& out) {
  std::size_t start = out.size();
  out.append(sizeof(std::uint32_t), '\0');
  return start;
}

/// Fills in the length of the frame begun at `start`.
inline void end_frame(std::string& out, std::size_t start) {
  auto length = static_cast<std::uint32_t>(out.size() - start - sizeof(std::uint32_t));
  std::memcpy(out.data() + start, &length, sizeof length);
}

/// The next whole frame in buf[pos..]; advances pos past it. False if it is not all there.
inline bool next_frame(const std::string& buf, std::size_t& pos, std::string_view& payload) {
  std::uint32_t length = 0;
  if (buf.size() - pos < sizeof length) return false;
  std::memcpy(&length, buf.data() + pos, sizeof length);
  if (buf.size() - pos - sizeof length < length) return false;
  payload = std::string_view(buf.data() + pos + sizeof length, length);
  pos += sizeof length + length;
  return true;
}

/// Process-pool worker entry, called before main(): if this process was started as a worker,
/// serves calls and exits without ever returning; otherwise returns 0.
int enter_worker_mode_if_asked() noexcept;

/// The demangled type name and message of the exception being handled.
std::string current_exception_type(std::string& message);

}  // namespace weave::concurrent::detail
