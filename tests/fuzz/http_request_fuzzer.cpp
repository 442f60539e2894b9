// libFuzzer target for the HTTP server's request parsing: llhttp and the checks weave adds
// (folding, bare CR, Host, transfer codings, limits), and the decoding of the request-target.
// The first byte picks where the input is split in two reads, so that every check is also
// exercised across a read boundary. Whatever the input: no crash, no sanitizer report, and a
// failure is always one of the statuses the server answers with.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "request_parser.hpp"
#include "target.hpp"

namespace {
using weave::http::detail::RequestHead;
using weave::http::detail::RequestParser;

class Sink final : public RequestParser::Sink {
 public:
  RequestHead& begin_request() override {
    ++begun;
    return head;
  }
  void head_complete() override {
    std::string path;
    std::string_view query_string;
    weave::http::QueryParams query;
    (void)weave::http::detail::split_target(head.target, path, query_string, query);
    if (!head.target.empty() && head.headers.size() > 1000) std::abort();
  }
  void body(std::string_view data) override { body_bytes += data.size(); }
  void request_complete() override { ++completed; }

  RequestHead head;
  std::size_t begun = 0;
  std::size_t completed = 0;
  std::size_t body_bytes = 0;
};

bool answerable(int status) {
  switch (status) {
    case 400:
    case 408:
    case 413:
    case 414:
    case 417:
    case 431:
    case 501:
    case 505:
      return true;
    default:
      return false;
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t split = data[0] % size;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  Sink sink;
  RequestParser parser(sink, {512, 512, 32});
  // Two reads, each from a buffer of its own, as a transport hands them over.
  std::string first(input.substr(0, split));
  std::string second(input.substr(std::min(split, input.size())));
  if (parser.feed(first)) parser.feed(second);
  if (parser.failed() && !answerable(parser.error_status())) std::abort();
  if (sink.completed > sink.begun) std::abort();
  return 0;
}
