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

  void push(std::string data) override {
    if (data.empty()) return;
    if (!started_) start(data);
    if (input_.size() == offset_) {
      input_ = std::move(data);
      offset_ = 0;
    } else {
      input_.erase(0, offset_);
      offset_ = 0;
      input_ += data;
    }
  }

  bool has_input() const noexcept override { return offset_ < input_.size(); }

  std::string pull(std::size_t max_out) override {
    if (!has_input()) return {};
    if (ended_) throw ClientPayloadError("data after the end of the compressed body");
    std::string out(max_out, '\0');
    z_.next_in = reinterpret_cast<Bytef*>(input_.data() + offset_);
    z_.avail_in = static_cast<uInt>(input_.size() - offset_);
    z_.next_out = reinterpret_cast<Bytef*>(out.data());
    z_.avail_out = static_cast<uInt>(out.size());
    const int rc = inflate(&z_, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
      throw ClientPayloadError(std::string("cannot decode the response body (") +
                               (z_.msg != nullptr ? z_.msg : "zlib error") + ")");
    }
    if (rc == Z_STREAM_END) ended_ = true;
    offset_ = input_.size() - z_.avail_in;
    out.resize(out.size() - z_.avail_out);
    return out;
  }

  void finish() override {
    if (started_ && !ended_) throw ClientPayloadError("the compressed response body is cut short");
  }

 private:
  void start(const std::string& first) {
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
  std::string input_;
  std::size_t offset_ = 0;
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
