#pragma once
// Probing an upload with ffprobe: the argv to run, the parser of its JSON,
// and the decision whether the hub can play the file (with a sentence a
// person understands when it cannot). Pure functions; no I/O.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "media/error.h"

namespace hub::media {

// A rational such as ffprobe's "30000/1001"; den == 0 means unknown.
struct Rational {
  int64_t num = 0;
  int64_t den = 0;
  double value() const { return den == 0 ? 0.0 : static_cast<double>(num) / den; }
  bool operator==(const Rational&) const = default;
};

struct MediaInfo {
  double duration_s = 0;          // format duration, else the longest stream's; 0 = unknown
  std::string container;          // ffprobe format_name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
  int64_t bit_rate = 0;           // overall bits/s (format), 0 = unknown
  int64_t size_bytes = 0;         // format size, 0 = unknown

  bool has_video = false;         // a video stream that is not a cover picture
  std::string video_codec;        // codec_name, e.g. "h264", "hevc", "vp9"
  std::string video_profile;      // e.g. "High", "Main", "Constrained Baseline"
  int video_level = 0;            // ffprobe's level: 40 for H.264 level 4.0
  std::string pix_fmt;            // e.g. "yuv420p"
  int coded_width = 0;            // as stored in the stream
  int coded_height = 0;
  int rotation = 0;               // display rotation in degrees, one of 0, 90, 180, 270
  int width = 0;                  // as displayed: coded size turned by `rotation`,
  int height = 0;                 //   so a portrait phone video is taller than wide
  Rational frame_rate;            // avg_frame_rate when known, else r_frame_rate
  int64_t video_bit_rate = 0;     // bits/s, 0 = unknown

  bool has_audio = false;
  std::string audio_codec;        // e.g. "aac", "opus"
  std::string audio_profile;      // e.g. "LC"
  int sample_rate = 0;
  int channels = 0;
  int64_t audio_bit_rate = 0;

  // The "p" number of the picture: the shorter displayed side (a 1080x1920
  // portrait video is 1080p, like its landscape twin).
  int short_side() const { return width < height ? width : height; }
};

// Parses the output of `ffprobe -v error -print_format json -show_format
// -show_streams` (ProbeArgs). errc::unplayable with a plain sentence when the
// JSON holds no format (what ffprobe prints for a file it cannot open: text,
// zero bytes, a truncated MP4), errc::bad_output when it is not JSON at all.
Result<MediaInfo> ParseProbe(std::string_view ffprobe_json);

// argv for ffprobe on a local file (no network: -protocol_whitelist file).
std::vector<std::string> ProbeArgs(const std::string& ffprobe, const std::string& input_path);

struct MediaLimits {
  int max_height = 2160;          // MEDIA_MAX_HEIGHT, compared with short_side()
  double max_duration_s = 4 * 3600.0;  // MEDIA_MAX_DURATION_S
  // Video codecs the ladder can decode (ffprobe codec_name).
  std::vector<std::string> video_codecs = {"h264", "hevc", "vp8", "vp9", "av1", "mpeg4",
                                           "mpeg2video", "mpeg1video", "mjpeg", "prores",
                                           "theora", "wmv3", "vc1", "h263", "dnxhd"};
};

// argv for ffprobe listing the packets of the last second of the file (one
// seek through the container's index, no decoding): a file cut short after
// its index — a +faststart MP4 whose upload was truncated — probes fine but
// cannot supply them. Output: "pts_time,pos,size" lines.
std::vector<std::string> TailArgs(const std::string& ffprobe, const std::string& input_path,
                                  double duration_s);

// Ok unless TailArgs' output (`tail_csv`, `tail_stderr`) shows the file ends
// before its index says: a packet past `file_size`, or ffprobe's "partial
// file". Otherwise errc::unplayable (permanent): "The file is incomplete: it
// stops at 4 seconds of 8 seconds; ... Upload the whole file again."
Result<void> CheckComplete(const MediaInfo& info, std::string_view tail_csv,
                           std::string_view tail_stderr, int64_t file_size);

// Ok when the ladder can turn `info` into HLS; otherwise errc::unplayable
// with the reason in words, e.g. "The file has no video track; audio-only
// files are not supported."
Result<void> CheckPlayable(const MediaInfo& info, const MediaLimits& limits);

// The user-facing sentence for a probe that could not open the file at all
// (ffprobe exit status non-zero); `ffprobe_stderr` is kept out of the
// sentence but helps choose it.
Error UnreadableFileError(std::string_view ffprobe_stderr);

// True when `info` can be packaged by stream copy into an HLS rendition that
// every HLS player plays: H.264 (Constrained Baseline/Main/High, 8-bit 4:2:0,
// no rotation: MPEG-TS cannot carry a display matrix and MSE ignores one) and
// AAC-LC or no audio.
bool CanStreamCopy(const MediaInfo& info);

}  // namespace hub::media
