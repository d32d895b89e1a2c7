#pragma once
// ffmpeg's `-progress pipe:1` output: blocks of key=value lines, each ended
// by "progress=continue" (or "progress=end" for the last). Pure.

#include <cstdint>
#include <optional>
#include <string_view>

namespace hub::media {

struct ProgressUpdate {
  int64_t out_time_us = 0;  // media time encoded so far (0 while "N/A")
  int64_t frame = 0;
  double speed = 0;         // 2.5 for "2.5x", 0 when unknown
  double percent = 0;       // out_time / duration, clamped to 0..100 (100 at end)
  bool end = false;
};

// Feed it stdout lines one at a time; it returns an update at the end of
// each block. Tolerates unknown keys, "N/A" values, and garbage lines.
class ProgressParser {
 public:
  explicit ProgressParser(double duration_s) : duration_us_(duration_s * 1e6) {}
  std::optional<ProgressUpdate> Feed(std::string_view line);

 private:
  double duration_us_;
  ProgressUpdate cur_;
};

}  // namespace hub::media
