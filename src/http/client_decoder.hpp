#pragma once
// Content-Encoding: gzip and deflate, decoded piece by piece with zlib as the body arrives.

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace weave::http::detail {

class BodyDecoder {
 public:
  /// For "gzip" (or "x-gzip") and "deflate"; null for an encoding it does not decode
  /// ("identity", none, or one it does not know: the body is then handed out as received).
  static std::unique_ptr<BodyDecoder> make(std::string_view content_encoding);
  virtual ~BodyDecoder() = default;
  /// Takes the next piece of the encoded body.
  virtual void push(std::string data) = 0;
  /// Whether pushed bytes wait to be decoded.
  virtual bool has_input() const noexcept = 0;
  /// Decodes up to `max_out` bytes of what was pushed: a small piece of a highly compressed body
  /// never turns into more memory than that at once. Errors: ClientPayloadError for corrupt data.
  virtual std::string pull(std::size_t max_out) = 0;
  /// At the end of the body. Errors: ClientPayloadError when the compressed stream is cut short.
  virtual void finish() = 0;
};

}  // namespace weave::http::detail
