#pragma once
// Byte-level writer and bounds-checked reader for the notes wire format
// (LEB128 varints). The reader never reads past its input and reports the
// first failure; callers check `ok()` once at the end of a section.

#include <cstdint>
#include <string>
#include <string_view>

namespace hub::notes::detail {

class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}
  void Byte(uint8_t b) { out_.push_back(static_cast<char>(b)); }
  void Varint(uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<char>((v & 0x7F) | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<char>(v));
  }
  void Bytes(std::string_view s) {
    Varint(s.size());
    out_.append(s);
  }
  void Raw(std::string_view s) { out_.append(s); }

 private:
  std::string& out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool ok() const { return ok_; }
  size_t remaining() const { return in_.size() - pos_; }
  bool done() const { return pos_ == in_.size(); }
  void Fail() { ok_ = false; pos_ = in_.size(); }

  uint8_t Byte() {
    if (pos_ >= in_.size()) { Fail(); return 0; }
    return static_cast<uint8_t>(in_[pos_++]);
  }
  uint64_t Varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= in_.size()) { Fail(); return 0; }
      auto b = static_cast<uint8_t>(in_[pos_++]);
      if (shift == 63 && b > 1) { Fail(); return 0; }
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
    Fail();
    return 0;
  }
  // A varint that must be <= max; fails otherwise.
  uint64_t Bounded(uint64_t max) {
    uint64_t v = Varint();
    if (v > max) { Fail(); return 0; }
    return v;
  }
  // A length-prefixed byte string of at most `max` bytes (and never more than what is left).
  std::string_view Bytes(uint64_t max) {
    uint64_t n = Varint();
    if (!ok_ || n > max || n > remaining()) { Fail(); return {}; }
    return Raw(n);
  }
  std::string_view Raw(size_t n) {
    if (n > remaining()) { Fail(); return {}; }
    std::string_view s = in_.substr(pos_, n);
    pos_ += n;
    return s;
  }

 private:
  std::string_view in_;
  size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace hub::notes::detail
