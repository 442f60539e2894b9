#pragma once
// Streams over pipe ends, for subprocess pipes (asyncio's connect_read_pipe/connect_write_pipe
// with a StreamReaderProtocol). Each takes ownership of `fd` and makes it non-blocking.

#include <cstddef>

#include "weave/loop.hpp"
#include "weave/streams.hpp"

namespace weave::detail {

/// write(2) to a pipe whose reader left raises SIGPIPE, which kills by default; as Python, Node
/// and Rust do, ignore it (only when nobody installed a handler), so that the writer gets EPIPE.
void ignore_sigpipe();

/// A reader of the read end of a pipe; EOF when every write end is closed.
StreamReader pipe_reader(EventLoop& loop, int fd, std::size_t limit = std::size_t{64} * 1024);
/// A writer to the write end of a pipe; write_eof() and close() close it. A reader that went
/// away makes drain() raise std::system_error(EPIPE).
StreamWriter pipe_writer(EventLoop& loop, int fd);

}  // namespace weave::detail
