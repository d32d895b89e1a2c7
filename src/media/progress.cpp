#include "media/progress.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <string>

namespace hub::media {

std::optional<ProgressUpdate> ProgressParser::Feed(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  auto eq = line.find('=');
  if (eq == std::string_view::npos) return std::nullopt;
  std::string_view key = line.substr(0, eq), value = line.substr(eq + 1);
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  auto to_int = [](std::string_view v, int64_t* out) {
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), *out);
    return ec == std::errc() && p == v.data() + v.size();
  };
  int64_t n = 0;
  if (key == "out_time_us") {
    if (to_int(value, &n) && n >= 0) cur_.out_time_us = n;
  } else if (key == "frame") {
    if (to_int(value, &n) && n >= 0) cur_.frame = n;
  } else if (key == "speed") {
    std::string v(value.substr(0, 32));
    char* end = nullptr;
    double s = std::strtod(v.c_str(), &end);
    cur_.speed = (end != v.c_str() && s >= 0) ? s : 0;
  } else if (key == "progress") {
    cur_.end = value == "end";
    if (cur_.end) {
      cur_.percent = 100;
    } else if (duration_us_ > 0) {
      cur_.percent = std::clamp(cur_.out_time_us / duration_us_ * 100.0, 0.0, 100.0);
    }
    return cur_;
  }
  return std::nullopt;
}

}  // namespace hub::media
