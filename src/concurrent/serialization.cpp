// Writer and Reader over MessagePack (msgpack-cxx, header-only, used only in this file).
//
// Writer appends items straight into the caller's string through msgpack's packer. Reader
// unpacks one top-level item at a time into a zone it owns and walks it depth-first: `pending_`
// is a stack of items still to be read, next on top; reading an array or map header pushes its
// children. So a message may be a sequence of top-level items (a call is: code address, code
// address, arguments...) and nested containers read naturally. Every mismatch throws
// ValueError: a message from a different build or a buggy Serializer fails loudly.

#include <msgpack.hpp>

#include <cstring>

#include "weave/detail/concurrent_serialization.hpp"

namespace weave::concurrent {

namespace {

struct StringSink {
  std::string* out;
  void write(const char* data, std::size_t n) { out->append(data, n); }
};

msgpack::packer<StringSink> packer_for(StringSink& sink) {
  return msgpack::packer<StringSink>(sink);
}

std::uint32_t checked_length(std::size_t n) {
  if (n > UINT32_MAX) throw ValueError("container too large to serialize");
  return static_cast<std::uint32_t>(n);
}

}  // namespace

void Writer::write_nil() {
  StringSink sink{out_};
  packer_for(sink).pack_nil();
}
void Writer::write_bool(bool v) {
  StringSink sink{out_};
  if (v) {
    packer_for(sink).pack_true();
  } else {
    packer_for(sink).pack_false();
  }
}
void Writer::write_int(std::int64_t v) {
  StringSink sink{out_};
  packer_for(sink).pack_int64(v);
}
void Writer::write_uint(std::uint64_t v) {
  StringSink sink{out_};
  packer_for(sink).pack_uint64(v);
}
void Writer::write_double(double v) {
  // msgpack's pack_double() stores integral values as integers, which loses -0.0 and the
  // item's kind; write the float 64 item (0xcb, big-endian IEEE 754) directly instead.
  std::uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  char item[9];
  item[0] = static_cast<char>(0xcb);
  for (int i = 0; i < 8; ++i) item[1 + i] = static_cast<char>(bits >> (56 - 8 * i));
  out_->append(item, sizeof item);
}
void Writer::write_string(std::string_view v) {
  StringSink sink{out_};
  packer_for(sink).pack_str(checked_length(v.size())).pack_str_body(v.data(), v.size());
}
void Writer::write_array(std::size_t n) {
  StringSink sink{out_};
  packer_for(sink).pack_array(checked_length(n));
}
void Writer::write_map(std::size_t n) {
  StringSink sink{out_};
  packer_for(sink).pack_map(checked_length(n));
}

struct Reader::Impl {
  explicit Impl(std::string_view bytes) : data(bytes) { pending.reserve(8); }

  /// The next item, removed from the stream.
  const msgpack::object& next() {
    const msgpack::object& item = peek();
    pending.pop_back();
    return item;
  }

  const msgpack::object& peek() {
    if (pending.empty()) unpack_top_level();
    return *pending.back();
  }

  const msgpack::object& next_of(msgpack::type::object_type type, const char* what) {
    const msgpack::object& item = next();
    if (item.type != type) throw ValueError(std::string("serialized data: expected ") + what);
    return item;
  }

  void unpack_top_level() {
    if (offset >= data.size()) throw ValueError("serialized data ended early");
    try {
      msgpack::object item = msgpack::unpack(zone, data.data(), data.size(), offset);
      auto* stored = static_cast<msgpack::object*>(
          zone.allocate_align(sizeof(msgpack::object), alignof(msgpack::object)));
      *stored = item;
      pending.push_back(stored);
    } catch (const std::exception& e) {
      throw ValueError(std::string("serialized data is malformed: ") + e.what());
    }
  }

  std::string_view data;
  std::size_t offset = 0;                       // start of the next top-level item in data
  msgpack::zone zone;                           // owns every unpacked item
  std::vector<const msgpack::object*> pending;  // items not read yet, next on top
};

Reader::Reader(std::string_view bytes) : impl_(std::make_unique<Impl>(bytes)) {}
Reader::~Reader() = default;

void Reader::read_nil() {
  impl_->next_of(msgpack::type::NIL, "nil");
}

bool Reader::next_is_nil() {
  return impl_->peek().type == msgpack::type::NIL;
}

bool Reader::read_bool() {
  return impl_->next_of(msgpack::type::BOOLEAN, "a bool").via.boolean;
}

std::int64_t Reader::read_int() {
  const msgpack::object& item = impl_->next();
  if (item.type == msgpack::type::NEGATIVE_INTEGER) return item.via.i64;
  if (item.type == msgpack::type::POSITIVE_INTEGER && item.via.u64 <= INT64_MAX) {
    return static_cast<std::int64_t>(item.via.u64);
  }
  throw ValueError("serialized data: expected a signed integer");
}

std::uint64_t Reader::read_uint() {
  return impl_->next_of(msgpack::type::POSITIVE_INTEGER, "an unsigned integer").via.u64;
}

double Reader::read_double() {
  const msgpack::object& item = impl_->next();
  switch (item.type) {
    case msgpack::type::FLOAT64:
    case msgpack::type::FLOAT32:
      return item.via.f64;
    case msgpack::type::POSITIVE_INTEGER:  // what other msgpack writers make of 3.0
      return static_cast<double>(item.via.u64);
    case msgpack::type::NEGATIVE_INTEGER:
      return static_cast<double>(item.via.i64);
    default:
      throw ValueError("serialized data: expected a floating-point number");
  }
}

std::string Reader::read_string() {
  const msgpack::object& item = impl_->next_of(msgpack::type::STR, "a string");
  return std::string(item.via.str.ptr, item.via.str.size);
}

std::size_t Reader::read_array() {
  const msgpack::object& item = impl_->next_of(msgpack::type::ARRAY, "an array");
  for (std::uint32_t i = item.via.array.size; i > 0; --i) {
    impl_->pending.push_back(&item.via.array.ptr[i - 1]);
  }
  return item.via.array.size;
}

std::size_t Reader::read_map() {
  const msgpack::object& item = impl_->next_of(msgpack::type::MAP, "a map");
  for (std::uint32_t i = item.via.map.size; i > 0; --i) {
    impl_->pending.push_back(&item.via.map.ptr[i - 1].val);
    impl_->pending.push_back(&item.via.map.ptr[i - 1].key);
  }
  return item.via.map.size;
}

}  // namespace weave::concurrent
