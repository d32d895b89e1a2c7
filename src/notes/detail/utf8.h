#pragma once
// UTF-8 helpers for the notes CRDT. Positions are code points; text is stored
// as UTF-8. Strict: no overlong forms, no surrogates (U+D800..U+DFFF), nothing
// above U+10FFFF.

#include <cstdint>
#include <cstring>
#include <string_view>

namespace hub::notes::detail {

// Number of code points of `s` if it is valid UTF-8, or -1.
inline int64_t Utf8Count(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  int64_t n = 0;
  while (p < end) {
    // ASCII fast path, 8 bytes at a time.
    while (end - p >= 8) {
      uint64_t w;
      std::memcpy(&w, p, 8);
      if (w & 0x8080808080808080ull) break;
      p += 8;
      n += 8;
    }
    if (p >= end) break;
    unsigned c = *p;
    if (c < 0x80) {
      ++p;
    } else if (c >= 0xC2 && c <= 0xDF) {
      if (end - p < 2 || (p[1] & 0xC0) != 0x80) return -1;
      p += 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      if (end - p < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return -1;
      if (c == 0xE0 && p[1] < 0xA0) return -1;   // overlong
      if (c == 0xED && p[1] >= 0xA0) return -1;  // surrogate
      p += 3;
    } else if (c >= 0xF0 && c <= 0xF4) {
      if (end - p < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80) {
        return -1;
      }
      if (c == 0xF0 && p[1] < 0x90) return -1;   // overlong
      if (c == 0xF4 && p[1] >= 0x90) return -1;  // above U+10FFFF
      p += 4;
    } else {
      return -1;
    }
    ++n;
  }
  return n;
}

// Byte offset of code point `k` in valid UTF-8 `s` (k <= code points of s).
inline size_t Utf8Offset(const char* s, size_t bytes, uint64_t k) {
  size_t i = 0;
  while (k > 0 && i < bytes) {
    ++i;
    while (i < bytes && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) ++i;
    --k;
  }
  return i;
}

}  // namespace hub::notes::detail
