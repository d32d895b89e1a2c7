#include "media/pipeline.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <future>
#include <thread>

#include "media/detail/test_util.h"
#include "media/playlist.h"

namespace hub::media {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

class Everything final : public Ownership {
public:
  bool ShouldClaim(std::string_view) const override { return true; }
};

constexpr const char *kRoot = "/streams";

// A fake ffmpeg/ffprobe writing what the real ones would into the MemStore.
class FakeMedia {
public:
  FakeMedia(storage::Store &store, ManualClock &clock)
      : store_(store), clock_(clock) {}

  Result<ProcessResult> operator()(const ProcessSpec &spec) {
    const auto &a = spec.argv;
    ProcessResult ok;
    ok.exit_code = 0;
    if (a[0] == "ffprobe" &&
        std::find(a.begin(), a.end(), "-read_intervals") != a.end()) {
      // The tail of the 86,944-byte clip of h264_aac.ffprobe.json (or a cut one).
      ProcessResult r = ok;
      if (cut)
        r.stderr_tail = "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x1] stream 0, offset 0x7a120: partial file\n";
      else
        spec.on_stdout_line("1.960000,1000,200");
      return r;
    }
    if (a[0] == "ffprobe") {
      if (unreadable) {
        ProcessResult r;
        r.exit_code = 1;
        r.stderr_tail = testing::TestData("text.ffprobe.stderr");
        if (spec.on_stdout_line)
          spec.on_stdout_line("{}");
        return r;
      }
      std::string j = testing::TestData("h264_aac.ffprobe.json");
      size_t start = 0;
      for (size_t nl; (nl = j.find('\n', start)) != std::string::npos;
           start = nl + 1) {
        spec.on_stdout_line(std::string_view(j).substr(start, nl - start));
      }
      return ok;
    }
    bool ladder = std::find(a.begin(), a.end(), "libx264") != a.end();
    if (ladder && on_ladder) {
      if (auto r = on_ladder(spec))
        return *r;
    }
    if (ladder && spec.on_stdout_line) {
      for (int i = 1; i <= 20; ++i) {
        clock_.Advance(300ms);
        spec.on_stdout_line("out_time_us=" + std::to_string(i * 100'000));
        spec.on_stdout_line(i == 20 ? "progress=end" : "progress=continue");
      }
    }
    for (const auto &arg : a) {
      if (!arg.starts_with(std::string(kRoot) + "/"))
        continue;
      std::string path = arg.substr(std::string(kRoot).size() + 1);
      if (path.ends_with("/index.m3u8")) {
        std::string dir = path.substr(0, path.size() - 10);
        (void)store_.WriteAtomic(dir + "seg_00000.ts",
                                 std::string(50'000, 'x'));
        (void)store_.WriteAtomic(path,
                                 "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-"
                                 "TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:0\n"
                                 "#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:2.000000,"
                                 "\nseg_00000.ts\n#EXT-X-ENDLIST\n");
      } else if (path.ends_with(".jpg")) {
        if (auto p = path.find("%03d"); p != std::string::npos)
          path.replace(p, 4, "000");
        (void)store_.WriteAtomic(path, "jpeg");
      }
    }
    return ok;
  }

  bool unreadable = false;
  bool cut = false;  // the upload stops after the MP4 index
  std::function<std::optional<Result<ProcessResult>>(const ProcessSpec &)>
      on_ladder;

private:
  storage::Store &store_;
  ManualClock &clock_;
};

class PipelineTest : public ::testing::Test {
protected:
  PipelineTest() {
    runner_.SetHandler([this](const ProcessSpec &s) { return fake_(s); });
  }
  PipelineOptions Options() {
    PipelineOptions o;
    o.streams_root = kRoot;
    o.original_path = [](const std::string &id) {
      return "/videos/" + id + "/original";
    };
    o.on_media = [this](const std::string &id, const json &patch) {
      std::lock_guard lock(mu_);
      reports_.emplace_back(id, patch);
      media_[id].update(patch);
    };
    return o;
  }
  // Runs jobs until none is claimable.
  int Drain() {
    int n = 0;
    for (;;) {
      auto r = pipeline_.RunOnce();
      EXPECT_TRUE(r.ok()) << r.error().message;
      if (!r.ok() || !*r)
        return n;
      ++n;
    }
  }
  json Media(const std::string &id) {
    std::lock_guard lock(mu_);
    return media_[id];
  }
  bool Exists(const std::string &p) { return store_->Stat(p).ok(); }
  std::vector<std::string> Kinds() {
    std::vector<std::string> out;
    for (const auto &c : runner_.calls()) {
      if (c[0] == "ffprobe")
        out.push_back(std::find(c.begin(), c.end(), "-read_intervals") != c.end() ? "tail"
                                                                                : "probe");
      else if (std::find(c.begin(), c.end(), "libx264") != c.end())
        out.push_back("ladder");
      else if (std::find(c.begin(), c.end(), "copy") != c.end())
        out.push_back("copy");
      else
        out.push_back("image");
    }
    return out;
  }

  ManualClock clock_;
  std::unique_ptr<storage::Store> store_ = storage::NewMemStore(&clock_);
  Everything everything_;
  JobQueue queue_{*store_, clock_, everything_, [] {
                    JobQueueOptions o;
                    o.node_id = "node-a";
                    return o;
                  }()};
  FakeMedia fake_{*store_, clock_};
  FakeProcessRunner runner_;
  std::mutex mu_;
  std::vector<std::pair<std::string, json>> reports_;
  std::map<std::string, json> media_;
  Pipeline pipeline_{*store_, queue_, runner_, clock_, Options()};
};

TEST_F(PipelineTest, UploadBecomesCopyThenLadderThenReady) {
  ASSERT_TRUE(pipeline_.Submit("vid1").ok());
  EXPECT_EQ(Media("vid1")["status"], "queued");
  EXPECT_EQ(Drain(), 4); // probe, copy, thumbnails, ladder
  auto kinds = Kinds();
  ASSERT_GE(kinds.size(), 4u);
  EXPECT_EQ(kinds[0], "probe");
  EXPECT_EQ(kinds[1], "tail");
  EXPECT_EQ(kinds[2], "copy"); // playable within seconds, before the ladder
  EXPECT_EQ(kinds.back(), "ladder");

  json m = Media("vid1");
  EXPECT_EQ(m["status"], "ready");
  EXPECT_EQ(m["progress"], 100);
  EXPECT_EQ(m["hls"], true);
  EXPECT_EQ(m["thumbs"], true);
  EXPECT_EQ(m["info"]["video_codec"], "h264");
  EXPECT_EQ(m["info"]["width"], 320);
  EXPECT_EQ(m["renditions"], json::array({"240p"}));

  auto master = store_->ReadAll(Pipeline::MasterPath("vid1"), 1 << 20);
  ASSERT_TRUE(master.ok());
  EXPECT_NE(master->find("ladder/240p/index.m3u8"), std::string::npos)
      << *master;
  EXPECT_EQ(master->find("copy/"), std::string::npos)
      << "the ladder replaces the copy";
  EXPECT_NE(master->find("RESOLUTION=320x240"), std::string::npos);
  EXPECT_TRUE(Exists("vid1/thumbs/poster_large.jpg"));
  EXPECT_TRUE(Exists("vid1/thumbs/poster_small.jpg"));
  EXPECT_TRUE(Exists("vid1/thumbs/sprite_000.jpg"));
  auto vtt = store_->ReadAll("vid1/thumbs/sprite.vtt", 1 << 20);
  ASSERT_TRUE(vtt.ok());
  EXPECT_TRUE(vtt->starts_with("WEBVTT"));
  // No work dirs left behind.
  auto hls = store_->List("vid1/hls");
  ASSERT_TRUE(hls.ok());
  EXPECT_EQ(*hls, (std::vector<std::string>{"copy", "ladder", "master.m3u8"}));
}

TEST_F(PipelineTest, MasterListsTheCopyBeforeTheLadderIsDone) {
  bool checked = false;
  fake_.on_ladder =
      [&](const ProcessSpec &) -> std::optional<Result<ProcessResult>> {
    auto master = store_->ReadAll(Pipeline::MasterPath("vid1"), 1 << 20);
    EXPECT_TRUE(master.ok());
    if (master.ok()) {
      EXPECT_NE(master->find("copy/source/index.m3u8"), std::string::npos)
          << *master;
    }
    EXPECT_EQ(Media("vid1")["hls"], true);
    EXPECT_EQ(Media("vid1")["status"], "processing");
    checked = true;
    return std::nullopt;
  };
  ASSERT_TRUE(pipeline_.Submit("vid1").ok());
  Drain();
  EXPECT_TRUE(checked);
}

TEST_F(PipelineTest, UnreadableFileFailsWithASentenceAndIsNotRetried) {
  fake_.unreadable = true;
  ASSERT_TRUE(pipeline_.Submit("bad").ok());
  EXPECT_EQ(Drain(), 1);
  json m = Media("bad");
  EXPECT_EQ(m["status"], "failed");
  EXPECT_TRUE(m["error"].get<std::string>().starts_with(
      "The file could not be read as a video"))
      << m;
  clock_.Advance(1h);
  EXPECT_EQ(Drain(), 0);
  EXPECT_EQ(runner_.calls().size(), 1u);
}

TEST_F(PipelineTest, FileCutAfterItsIndexFailsAtOnceAsIncomplete) {
  fake_.cut = true;
  ASSERT_TRUE(pipeline_.Submit("cut").ok());
  EXPECT_EQ(Drain(), 1);
  json m = Media("cut");
  EXPECT_EQ(m["status"], "failed");
  EXPECT_TRUE(m["error"].get<std::string>().starts_with("The file is incomplete"))
      << m;
  clock_.Advance(1h);
  EXPECT_EQ(Drain(), 0);
  EXPECT_EQ(Kinds(), (std::vector<std::string>{"probe", "tail"}));
}

TEST_F(PipelineTest, ProgressIsThrottledToOnePerSecondAndWholePercents) {
  ASSERT_TRUE(pipeline_.Submit("vid1").ok());
  Drain();
  int progress_reports = 0;
  for (const auto &[id, patch] : reports_) {
    if (patch.contains("progress") && patch.size() == 1)
      ++progress_reports;
  }
  // 20 blocks, 300 ms apart: 6 s of encoding, at most one report a second.
  EXPECT_GE(progress_reports, 3);
  EXPECT_LE(progress_reports, 7);
}

TEST_F(PipelineTest, FailedLadderIsRetriedWithBackoff) {
  int failures = 1;
  fake_.on_ladder =
      [&](const ProcessSpec &) -> std::optional<Result<ProcessResult>> {
    if (failures-- <= 0)
      return std::nullopt;
    ProcessResult r;
    r.exit_code = 1;
    r.stderr_tail = "Conversion failed!";
    return Result<ProcessResult>(r);
  };
  ASSERT_TRUE(pipeline_.Submit("vid1").ok());
  Drain();
  EXPECT_EQ(Media("vid1")["status"], "processing");
  EXPECT_EQ(Media("vid1")["hls"], true); // the copy still plays
  EXPECT_FALSE(Exists("vid1/hls/ladder"));
  clock_.Advance(11s);
  EXPECT_EQ(Drain(), 1);
  EXPECT_EQ(Media("vid1")["status"], "ready");
}

TEST_F(PipelineTest, LadderFailingForGoodFailsTheVideo) {
  fake_.on_ladder =
      [&](const ProcessSpec &) -> std::optional<Result<ProcessResult>> {
    ProcessResult r;
    r.exit_code = 1;
    return Result<ProcessResult>(r);
  };
  ASSERT_TRUE(pipeline_.Submit("vid1").ok());
  for (int i = 0; i < 4; ++i) {
    Drain();
    clock_.Advance(10min);
  }
  json m = Media("vid1");
  EXPECT_EQ(m["status"], "failed");
  EXPECT_TRUE(m["error"].get<std::string>().starts_with(
      "The video could not be converted"))
      << m;
}

TEST_F(PipelineTest, DeletingDuringTheLadderKillsItAndLeavesNothing) {
  fake_.on_ladder =
      [&](const ProcessSpec &spec) -> std::optional<Result<ProcessResult>> {
    // ffmpeg has written half of its output when the video is deleted.
    (void)store_->WriteAtomic("vid1/hls/.work-ladder-1/240p/seg_00000.ts",
                              "half");
    EXPECT_TRUE(pipeline_.Cancel("vid1").ok());
    EXPECT_TRUE(spec.cancel != nullptr && spec.cancel->load());
    ProcessResult r;
    r.end = ProcessEnd::kCancelled;
    return Result<ProcessResult>(r);
  };
  ASSERT_TRUE(pipeline_.Submit("vid1").ok());
  Drain();
  EXPECT_FALSE(Exists("vid1"));
  auto st = queue_.Status(JobQueue::JobId("vid1", "ladder"));
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->state, JobState::kCancelled);
  EXPECT_TRUE(pipeline_.Submit("vid1").ok()); // refused quietly
  EXPECT_EQ(Drain(), 0);
}

TEST_F(PipelineTest, AdvanceIsIdempotentAndResumesAfterACrash) {
  ASSERT_TRUE(pipeline_.Submit("vid1").ok());
  ASSERT_TRUE(pipeline_.RunOnce().ok()); // probe done
  // The process died before queueing the next jobs: a sweep calls Advance.
  ASSERT_TRUE(pipeline_.Advance("vid1").ok());
  ASSERT_TRUE(pipeline_.Advance("vid1").ok());
  EXPECT_EQ(Drain(), 3);
  EXPECT_EQ(Media("vid1")["status"], "ready");
}

TEST_F(PipelineTest, StopKillsTheRunningJobAndLeavesItForARestart) {
  std::promise<void> entered;
  runner_.SetHandler([&](const ProcessSpec& spec) -> Result<ProcessResult> {
    entered.set_value();
    while (!spec.cancel->load()) std::this_thread::yield();  // a long ffmpeg, until killed
    ProcessResult r;
    r.end = ProcessEnd::kCancelled;
    return r;
  });
  pipeline_.Start();
  ASSERT_TRUE(pipeline_.Submit("vid1").ok());
  entered.get_future().wait();
  pipeline_.Stop();
  // Not finished: no attempt spent, no outcome; the lease runs out and a
  // restarted node redoes it from a clean state.
  auto st = queue_.Status(JobQueue::JobId("vid1", "probe"));
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->state, JobState::kRunning);
  EXPECT_FALSE(Exists(".jobs/vid1.probe/attempts/1.json"));
  EXPECT_FALSE(Exists(".jobs/vid1.probe/done.json"));
  EXPECT_EQ(Media("vid1")["status"], "processing");
}

// ---- the real ffmpeg on a 4 s clip ----

TEST(PipelineRealTest, FourSecondClipBecomesHls) {
  if (!testing::HaveProgram("ffmpeg") || !testing::HaveProgram("ffprobe"))
    GTEST_SKIP() << "no ffmpeg";
  testing::TempDir dir;
  std::string clip = dir / "clip.mp4";
  auto runner = NewProcessRunner();
  ProcessSpec gen;
  gen.argv = {
      "ffmpeg",    "-v",        "error", "-y",
      "-f",        "lavfi",     "-i",    "testsrc2=size=640x360:rate=25",
      "-f",        "lavfi",     "-i",    "sine=sample_rate=48000",
      "-t",        "4",         "-c:v",  "libx264",
      "-preset",   "ultrafast", "-g",    "50",
      "-pix_fmt",  "yuv420p",   "-c:a",  "aac",
      "-shortest", clip};
  gen.limits.timeout = 60s;
  auto made = runner->Run(gen);
  ASSERT_TRUE(made.ok() && made->success());

  SystemClock clock;
  auto store = storage::OpenLocalStore(dir / "streams");
  Everything everything;
  JobQueueOptions qo;
  qo.node_id = "node-a";
  JobQueue queue(*store, clock, everything, qo);
  PipelineOptions o;
  o.streams_root = dir / "streams";
  o.original_path = [&](const std::string &) { return clip; };
  o.ladder.rungs = {DefaultRungs()[3], DefaultRungs()[4]}; // 360p, 240p: quick
  std::mutex mu;
  json media = json::object();
  o.on_media = [&](const std::string &, const json &p) {
    std::lock_guard lock(mu);
    media.update(p);
  };
  o.job_timeout = 120s;
  Pipeline pipeline(*store, queue, *runner, clock, o);
  ASSERT_TRUE(pipeline.Submit("vid1").ok());
  for (;;) {
    auto r = pipeline.RunOnce();
    ASSERT_TRUE(r.ok()) << r.error().message;
    if (!*r)
      break;
  }
  std::lock_guard lock(mu);
  EXPECT_EQ(media["status"], "ready") << media;
  EXPECT_EQ(media["info"]["width"], 640);
  auto master = store->ReadAll(Pipeline::MasterPath("vid1"), 1 << 20);
  ASSERT_TRUE(master.ok());
  EXPECT_NE(master->find("RESOLUTION=640x360"), std::string::npos) << *master;
  EXPECT_NE(master->find("ladder/240p/index.m3u8"), std::string::npos)
      << *master;
  EXPECT_NE(master->find("CODECS=\"avc1."), std::string::npos) << *master;
  for (const char *f :
       {"vid1/thumbs/poster_large.jpg", "vid1/thumbs/poster_small.jpg",
        "vid1/thumbs/sprite_000.jpg", "vid1/thumbs/sprite.vtt",
        "vid1/hls/copy/source/index.m3u8", "vid1/hls/ladder/360p/index.m3u8"}) {
    EXPECT_TRUE(store->Stat(f).ok()) << f;
  }
}

} // namespace
} // namespace hub::media
