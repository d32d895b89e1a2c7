#pragma once
// HLS playlists (RFC 8216): a parser for the media playlists ffmpeg writes,
// the checks that a rendition is complete, the bandwidth measurement, and
// the master playlist writer. Pure; file sizes come in as values.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "media/error.h"
#include "media/ladder.h"

namespace hub::media {

struct Segment {
  double duration_s = 0;  // EXTINF
  std::string uri;        // as written (relative to the playlist)
};

struct MediaPlaylist {
  int version = 1;                 // EXT-X-VERSION (1 when absent)
  int target_duration_s = 0;       // EXT-X-TARGETDURATION
  int64_t media_sequence = 0;      // EXT-X-MEDIA-SEQUENCE
  std::string playlist_type;       // EXT-X-PLAYLIST-TYPE: "VOD", "EVENT" or ""
  bool independent_segments = false;
  bool endlist = false;            // EXT-X-ENDLIST
  std::string map_uri;             // EXT-X-MAP URI (fMP4 init segment), "" for MPEG-TS
  std::vector<Segment> segments;
  double total_duration_s() const;
};

// Parses a media playlist. errc::bad_output when it is not one (no #EXTM3U,
// a URI without EXTINF, a malformed EXTINF, a master playlist, > 100000
// segments, a URI that is absolute or leaves the directory).
Result<MediaPlaylist> ParseMediaPlaylist(std::string_view text);

// Size of a file next to the playlist, by its URI; nullopt when missing.
using SizeOf = std::function<std::optional<uint64_t>(const std::string& uri)>;

struct ValidationOptions {
  double segment_seconds = 4;  // the target
  // Every segment but the last lasts segment_seconds +- tolerance (encoded
  // renditions); the copy rendition cuts at the source's keyframes, so it
  // only needs durations <= EXT-X-TARGETDURATION.
  double tolerance_s = 0.5;
  bool exact_durations = true;
};

// Checks what ffmpeg wrote: a VOD playlist with EXT-X-ENDLIST, at least one
// segment, every segment (and the init segment) present and non-empty, no
// EXTINF above TARGETDURATION (rounded, RFC 8216 4.3.3.1), durations as
// above, total within 1 s of `expected_duration_s` (when > 0).
Result<void> ValidateRendition(const MediaPlaylist& pl, const SizeOf& size_of,
                               double expected_duration_s, const ValidationOptions& options);

struct Bandwidth {
  int64_t peak_bps = 0;     // BANDWIDTH: the largest segment bit rate (RFC 8216 4.3.4.2)
  int64_t average_bps = 0;  // AVERAGE-BANDWIDTH: all bytes / all seconds
};

// Measured from the playlist and the segment sizes (the init segment's bytes
// are counted with the first segment). errc::bad_output if a size is missing.
Result<Bandwidth> MeasureBandwidth(const MediaPlaylist& pl, const SizeOf& size_of);

struct VariantStream {
  Rendition rendition;          // RESOLUTION, CODECS, FRAME-RATE
  Bandwidth bandwidth;          // measured
  std::string uri;              // e.g. "720p/index.m3u8"
};

// The master playlist, variants in the order given (put the one to start
// with first: players begin with the first listed). EXT-X-VERSION 3 for
// MPEG-TS; 7 when `fmp4` (EXT-X-MAP in the media playlists needs 6+).
std::string MasterPlaylist(const std::vector<VariantStream>& variants, bool fmp4 = false);

}  // namespace hub::media
