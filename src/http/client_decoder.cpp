// zlib's inflate for gzip (RFC 1952) and deflate. "deflate" is meant to be zlib-wrapped
// (RFC 1950) but some servers send raw deflate; as aiohttp, both are accepted, told apart by
// the zlib header.
#include "client_decoder.hpp"

#include <zlib.h>

#include "weave/http.hpp"

namespace weave::http::detail {

namespace {

class ZlibDecoder : public BodyDecoder {
 public:
  explicit ZlibDecoder(bool gzip) : gzip_(gzip) {}
  ZlibDecoder(const ZlibDecoder&) = delete;
  ZlibDecoder& operator=(const ZlibDecoder&) = delete;
  ~ZlibDecoder() override {
    if (started_) inflateEnd(&z_);
  }

  std::string feed(std::string_view data) override {
    if (data.empty()) return {};
    if (!started_) start(data);
    if (ended_) throw ClientPayloadError("data after the end of the compressed body");
    std::string out;
    z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    z_.avail_in = static_cast<uInt>(data.size());
    char buf[16384];
    while (z_.avail_in > 0 && !ended_) {
      z_.next_out = reinterpret_cast<Bytef*>(buf);
      z_.avail_out = sizeof buf;
      const int rc = inflate(&z_, Z_NO_FLUSH);
      if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
        throw ClientPayloadError(std::string("cannot decode the response body (") +
                                 (z_.msg != nullptr ? z_.msg : "zlib error") + ")");
      }
      out.append(buf, sizeof buf - z_.avail_out);
      if (rc == Z_STREAM_END) ended_ = true;
      if (rc == Z_BUF_ERROR && z_.avail_out != 0) break;
    }
    return out;
  }

  void finish() override {
    if (started_ && !ended_) throw ClientPayloadError("the compressed response body is cut short");
  }

 private:
  void start(std::string_view first) {
    int bits = 15 + 16;  // gzip
    if (!gzip_) {
      const auto cmf = static_cast<unsigned char>(first[0]);
      const auto flg = first.size() > 1 ? static_cast<unsigned char>(first[1]) : 0u;
      const bool zlib_wrapped = (cmf & 0x0f) == 8 && (cmf * 256u + flg) % 31 == 0;
      bits = zlib_wrapped ? 15 : -15;
    }
    if (inflateInit2(&z_, bits) != Z_OK) throw ClientPayloadError("zlib: inflateInit2 failed");
    started_ = true;
  }

  z_stream z_{};
  bool gzip_;
  bool started_ = false;
  bool ended_ = false;
};

}  // namespace

std::unique_ptr<BodyDecoder> BodyDecoder::make(std::string_view content_encoding) {
  if (iequals(content_encoding, "gzip") || iequals(content_encoding, "x-gzip")) {
    return std::make_unique<ZlibDecoder>(true);
  }
  if (iequals(content_encoding, "deflate")) return std::make_unique<ZlibDecoder>(false);
  return nullptr;
}

}  // namespace weave::http::detail
