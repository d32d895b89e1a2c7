#pragma once
// Small formatting helpers shared by the media sources.

#include <cmath>
#include <cstdio>
#include <string>

namespace hub::media::detail {

// "45 s", "12 min 30 s", "4 h", "1 h 5 min": for sentences shown to people.
inline std::string SpokenDuration(double seconds) {
  long s = std::lround(seconds < 0 ? 0 : seconds);
  long h = s / 3600, m = (s % 3600) / 60, sec = s % 60;
  std::string out;
  if (h > 0) {
    out = std::to_string(h) + " h";
    if (m > 0) out += " " + std::to_string(m) + " min";
    return out;
  }
  if (m > 0) {
    out = std::to_string(m) + " min";
    if (sec > 0) out += " " + std::to_string(sec) + " s";
    return out;
  }
  return std::to_string(sec) + " s";
}

// Fixed-point decimal without locale surprises, e.g. Decimal(29.97, 3) = "29.970".
inline std::string Decimal(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

}  // namespace hub::media::detail
