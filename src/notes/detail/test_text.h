#pragma once
// For the notes tests only: UTF-8 <-> code points and splice edits applied to
// a plain string, the model the CRDT's results are checked against.

#include <string>
#include <string_view>
#include <vector>

#include "notes/doc.h"

namespace hub::notes::testing {

// Decodes valid UTF-8 (the tests' own strings) into code points.
inline std::u32string U32(std::string_view s) {
  std::u32string o;
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    int n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    char32_t v = n == 1 ? c : (c & (0xFF >> (n + 1)));
    for (int k = 1; k < n; ++k) v = (v << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    o.push_back(v);
    i += static_cast<size_t>(n);
  }
  return o;
}

inline std::string Utf8(std::u32string_view s) {
  std::string o;
  for (char32_t c : s) {
    if (c < 0x80) {
      o.push_back(static_cast<char>(c));
    } else if (c < 0x800) {
      o.push_back(static_cast<char>(0xC0 | (c >> 6)));
      o.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    } else if (c < 0x10000) {
      o.push_back(static_cast<char>(0xE0 | (c >> 12)));
      o.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
      o.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    } else {
      o.push_back(static_cast<char>(0xF0 | (c >> 18)));
      o.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
      o.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
      o.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
  }
  return o;
}

// Applies splice edits (code points) to a UTF-8 text.
inline std::string Splice(const std::string& text, const std::vector<Edit>& edits) {
  std::u32string t = U32(text);
  for (const Edit& e : edits) {
    t.replace(static_cast<size_t>(e.position), static_cast<size_t>(e.delete_count), U32(e.insert));
  }
  return Utf8(t);
}

}  // namespace hub::notes::testing
