#include "media/playlist.h"

#include <map>

#include <gtest/gtest.h>

namespace hub::media {
namespace {

// As ffmpeg 5.1's hls muxer writes it.
constexpr const char* kFfmpegPlaylist =
    "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:0\n"
    "#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-INDEPENDENT-SEGMENTS\n"
    "#EXTINF:4.000000,\nseg_00000.ts\n#EXTINF:4.000000,\nseg_00001.ts\n"
    "#EXTINF:1.000000,\nseg_00002.ts\n#EXT-X-ENDLIST";

SizeOf Sizes(std::map<std::string, uint64_t> m) {
  return [m](const std::string& uri) -> std::optional<uint64_t> {
    auto it = m.find(uri);
    if (it == m.end()) return std::nullopt;
    return it->second;
  };
}

TEST(PlaylistTest, ParsesWhatFfmpegWrites) {
  auto pl = ParseMediaPlaylist(kFfmpegPlaylist);
  ASSERT_TRUE(pl.ok()) << pl.error().message;
  EXPECT_EQ(pl->version, 6);
  EXPECT_EQ(pl->target_duration_s, 4);
  EXPECT_EQ(pl->playlist_type, "VOD");
  EXPECT_TRUE(pl->independent_segments);
  EXPECT_TRUE(pl->endlist);
  ASSERT_EQ(pl->segments.size(), 3u);
  EXPECT_EQ(pl->segments[1].uri, "seg_00001.ts");
  EXPECT_DOUBLE_EQ(pl->segments[2].duration_s, 1.0);
  EXPECT_DOUBLE_EQ(pl->total_duration_s(), 9.0);
}

TEST(PlaylistTest, CrlfCommentsTitlesAndInitSegment) {
  auto pl = ParseMediaPlaylist(
      "#EXTM3U\r\n# a comment\r\n#EXT-X-TARGETDURATION:4\r\n#EXT-X-MAP:URI=\"init.mp4\"\r\n"
      "#EXT-X-UNKNOWN-TAG:1\r\n\r\n#EXTINF:3.96,title\r\nseg_00000.m4s\r\n#EXT-X-ENDLIST\r\n");
  ASSERT_TRUE(pl.ok()) << pl.error().message;
  EXPECT_EQ(pl->map_uri, "init.mp4");
  ASSERT_EQ(pl->segments.size(), 1u);
  EXPECT_DOUBLE_EQ(pl->segments[0].duration_s, 3.96);
  EXPECT_EQ(pl->version, 1);
}

TEST(PlaylistTest, RejectsWhatIsNotAMediaPlaylist) {
  for (const char* bad : {
           "", "seg.ts\n", "#EXTM3U\nseg_00000.ts\n", "#EXTM3U\n#EXTINF:abc,\nseg.ts\n",
           "#EXTM3U\n#EXTINF:-1,\nseg.ts\n", "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nx/index.m3u8\n",
           "#EXTM3U\n#EXTINF:4,\n../../etc/passwd\n", "#EXTM3U\n#EXTINF:4,\nhttp://evil/seg.ts\n",
           "#EXTM3U\n#EXTINF:4,\n/abs.ts\n", "#EXTM3U\n#EXT-X-BYTERANGE:100@0\n#EXTINF:4,\na.ts\n",
           "#EXTM3U\n#EXTINF:4,\n", "#EXTM3U\n#EXT-X-MAP:URI=\"../init.mp4\"\n"}) {
    SCOPED_TRACE(bad);
    auto pl = ParseMediaPlaylist(bad);
    ASSERT_FALSE(pl.ok());
    EXPECT_EQ(pl.code(), errc::bad_output);
  }
}

TEST(PlaylistTest, ValidationFindsWhatACrashOrBugLeaves) {
  auto pl = ParseMediaPlaylist(kFfmpegPlaylist);
  ASSERT_TRUE(pl.ok());
  auto all = Sizes({{"seg_00000.ts", 100}, {"seg_00001.ts", 100}, {"seg_00002.ts", 30}});
  ValidationOptions o;
  EXPECT_TRUE(ValidateRendition(*pl, all, 9.0, o).ok());
  // A missing or empty segment.
  auto r = ValidateRendition(*pl, Sizes({{"seg_00000.ts", 100}, {"seg_00002.ts", 30}}), 9.0, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("seg_00001.ts is missing"), std::string::npos);
  EXPECT_FALSE(ValidateRendition(*pl, Sizes({{"seg_00000.ts", 100}, {"seg_00001.ts", 0}, {"seg_00002.ts", 1}}), 9, o).ok());
  // Shorter than the source: the encoder stopped early.
  r = ValidateRendition(*pl, all, 20.0, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("source lasts 20.000 s"), std::string::npos);
  // No ENDLIST.
  auto open = *pl;
  open.endlist = false;
  EXPECT_FALSE(ValidateRendition(open, all, 9.0, o).ok());
  // A 6 s segment in a 4 s ladder (keyframes not forced).
  auto uneven = ParseMediaPlaylist(
      "#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:6.0,\na.ts\n#EXTINF:3.0,\nb.ts\n#EXT-X-ENDLIST\n");
  ASSERT_TRUE(uneven.ok());
  auto ab = Sizes({{"a.ts", 1}, {"b.ts", 1}});
  r = ValidateRendition(*uneven, ab, 9.0, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("lasts 6.000 s instead of about 4 s"), std::string::npos);
  o.exact_durations = false;  // the copy rendition
  EXPECT_TRUE(ValidateRendition(*uneven, ab, 9.0, o).ok());
  // EXTINF above TARGETDURATION breaks RFC 8216 4.3.3.1.
  auto over = *uneven;
  over.target_duration_s = 4;
  EXPECT_FALSE(ValidateRendition(over, ab, 9.0, o).ok());
}

TEST(PlaylistTest, BandwidthIsThePeakSegmentBitRate) {
  auto pl = ParseMediaPlaylist(kFfmpegPlaylist);
  ASSERT_TRUE(pl.ok());
  // 400 kB in 4 s = 800 kbit/s; 500 kB in 4 s = 1 Mbit/s; the 1 s tail at
  // 150 kB (1.2 Mbit/s) is too short on its own to count, but with the
  // segment before it (5 s) it does: 650 kB / 5 s = 1.04 Mbit/s.
  auto bw = MeasureBandwidth(*pl, Sizes({{"seg_00000.ts", 400'000}, {"seg_00001.ts", 500'000}, {"seg_00002.ts", 150'000}}));
  ASSERT_TRUE(bw.ok());
  EXPECT_EQ(bw->peak_bps, 1'040'000);
  EXPECT_EQ(bw->average_bps, 933'334);  // 1.05 MB * 8 / 9 s, rounded up
  EXPECT_FALSE(MeasureBandwidth(*pl, Sizes({{"seg_00000.ts", 1}})).ok());
}

TEST(PlaylistTest, MasterPlaylist) {
  Rendition hd;
  hd.name = "720p";
  hd.width = 1280;
  hd.height = 720;
  hd.frame_rate = 30000.0 / 1001;
  hd.codecs = "avc1.64001f,mp4a.40.2";
  Rendition sd = hd;
  sd.width = 640;
  sd.height = 360;
  sd.codecs = "avc1.4d401e,mp4a.40.2";
  std::string m = MasterPlaylist({{hd, {3'100'000, 2'900'000}, "720p/index.m3u8"},
                                  {sd, {900'000, 850'000}, "360p/index.m3u8"}});
  EXPECT_EQ(m,
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n"
            "#EXT-X-STREAM-INF:BANDWIDTH=3100000,AVERAGE-BANDWIDTH=2900000,RESOLUTION=1280x720,"
            "CODECS=\"avc1.64001f,mp4a.40.2\",FRAME-RATE=29.970\n720p/index.m3u8\n"
            "#EXT-X-STREAM-INF:BANDWIDTH=900000,AVERAGE-BANDWIDTH=850000,RESOLUTION=640x360,"
            "CODECS=\"avc1.4d401e,mp4a.40.2\",FRAME-RATE=29.970\n360p/index.m3u8\n");
}

}  // namespace
}  // namespace hub::media
