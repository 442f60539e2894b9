#pragma once
// Content-Encoding: gzip and deflate, decoded piece by piece with zlib as the body arrives.

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
  /// The decoded bytes of the next piece. Errors: ClientPayloadError for corrupt data.
  virtual std::string feed(std::string_view data) = 0;
  /// At the end of the body. Errors: ClientPayloadError when the compressed stream is cut short.
  virtual void finish() = 0;
};

}  // namespace weave::http::detail
