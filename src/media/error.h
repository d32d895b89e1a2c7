#pragma once
// Errors of the media component (STYLE.md #3): an enum registered as an
// error category; every Error's message is a sentence a person understands.

#include <system_error>

namespace hub::media {

enum class errc {
  unplayable = 1,   // the file is not a video this hub can play: permanent, never retried
  bad_output,       // ffprobe/ffmpeg printed something we cannot parse, or wrote incomplete HLS
  spawn_failed,     // the program could not be started (not installed, not executable)
  process_failed,   // the program ran and failed (non-zero exit, signal, timeout)
  cancelled,        // stopped on request (video deleted, shutdown, lease lost)
  storage,          // the shared storage failed; retry later
  lost,             // another node took over this job (its lease expired here)
};
const std::error_category& category();
inline std::error_code make_error_code(errc e) { return {static_cast<int>(e), category()}; }

}  // namespace hub::media

template <>
struct std::is_error_code_enum<hub::media::errc> : std::true_type {};
