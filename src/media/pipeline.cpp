#include "media/pipeline.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/ids.h"
#include "media/playlist.h"
#include "media/progress.h"

namespace hub::media {

using json = nlohmann::json;

namespace {

constexpr size_t kMaxPlaylistBytes = 4 << 20;

Error Failed(const std::string &what, const ProcessResult &r) {
  return MakeError(errc::process_failed, what + " " + r.Describe());
}

json InfoJson(const MediaInfo &i) {
  return json{
      {"duration_s", std::round(i.duration_s * 1000) / 1000},
      {"container", i.container},
      {"video_codec", i.video_codec},
      {"audio_codec", i.has_audio ? json(i.audio_codec) : json(nullptr)},
      {"width", i.width},
      {"height", i.height},
      {"fps", std::round(i.frame_rate.value() * 1000) / 1000},
      {"bit_rate", i.bit_rate}};
}

} // namespace

Pipeline::Pipeline(storage::Store &streams, JobQueue &queue,
                   ProcessRunner &runner, const Clock &clock,
                   PipelineOptions options)
    : streams_(streams), queue_(queue), runner_(runner), clock_(clock),
      options_(std::move(options)) {
  if (options_.workers < 1)
    options_.workers = 1;
  if (options_.cpu_seconds <= 0) {
    int64_t cores = std::max(1u, std::thread::hardware_concurrency());
    options_.cpu_seconds = std::max<int64_t>(
        60,
        std::chrono::duration_cast<std::chrono::seconds>(options_.job_timeout)
                .count() *
            cores);
  }
}

Pipeline::~Pipeline() { Stop(); }

void Pipeline::Start() {
  std::lock_guard lock(mu_);
  if (started_ || stopping_)
    return;
  started_ = true;
  for (int i = 0; i < options_.workers; ++i)
    threads_.emplace_back([this] { WorkerLoop(); });
  threads_.emplace_back([this] { HeartbeatLoop(); });
}

void Pipeline::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_)
      return;
    stopping_ = true;
    // Running ffmpegs die now; their claims are abandoned (not finished) so
    // the jobs are redone from a clean state once the lease runs out.
    for (Running *r : running_)
      r->cancel = true;
  }
  cv_.notify_all();
  for (auto &t : threads_)
    t.join();
  threads_.clear();
}

std::string Pipeline::Abs(const std::string &store_path) const {
  return options_.streams_root + "/" + store_path;
}

void Pipeline::Report(const std::string &id, const json &patch) {
  if (options_.on_media && !patch.empty())
    options_.on_media(id, patch);
}

void Pipeline::ReportProgress(const std::string &id, double percent) {
  int p = std::clamp(static_cast<int>(std::floor(percent)), 0, 100);
  int64_t now = clock_.NowUnixMillis();
  {
    std::lock_guard lock(mu_);
    auto &[last_ms, last_pct] = progress_[id];
    if (p == last_pct ||
        (last_ms != 0 && now - last_ms < options_.progress_interval.count()))
      return;
    last_ms = now;
    last_pct = p;
  }
  Report(id, {{"progress", p}});
}

Result<void> Pipeline::Submit(const std::string &video_id) {
  auto r = Advance(video_id);
  Wake();
  return r;
}

Result<void> Pipeline::Cancel(const std::string &video_id) {
  auto c = queue_.CancelVideo(video_id);
  {
    std::lock_guard lock(mu_);
    for (Running *r : running_) {
      if (r->video_id == video_id)
        r->cancel = true;
    }
    progress_.erase(video_id);
  }
  if (!IsValidId(video_id))
    return c;
  auto rm = streams_.RemoveAll(video_id);
  if (!c.ok())
    return c;
  if (!rm.ok())
    return MakeError(errc::storage, rm.error().message);
  return Ok();
}

Result<void> Pipeline::Forget(const std::string &video_id) {
  HUB_TRY(Cancel(video_id));
  return queue_.Forget(video_id);
}

Result<bool> Pipeline::RunOnce() {
  auto c = queue_.TryClaim();
  if (!c.ok())
    return c.error();
  if (!*c)
    return false;
  Running r;
  r.claim = std::move(**c);
  r.video_id = r.claim.job.spec.video_id;
  {
    std::lock_guard lock(mu_);
    if (stopping_)
      return true; // abandoned: redone after the lease
    running_.push_back(&r);
  }
  spdlog::info("media: {} attempt {} started", r.claim.job.id, r.claim.epoch);
  Report(r.video_id, {{"status", "processing"}});
  auto outcome = RunJob(r);
  bool stopping;
  {
    std::lock_guard lock(mu_);
    std::erase(running_, &r);
    stopping = stopping_;
    if (r.claim.job.spec.kind == "ladder")
      progress_.erase(r.video_id);
  }
  if (stopping && !outcome.ok()) {
    spdlog::info(
        "media: {} interrupted by shutdown; it resumes after a restart",
        r.claim.job.id);
    return true;
  }
  auto fin = queue_.Finish(r.claim, outcome);
  if (!fin.ok()) {
    if (fin.code() == errc::cancelled) {
      // The video was deleted: nothing of it may stay.
      (void)streams_.RemoveAll(r.video_id);
      spdlog::info("media: {} cancelled", r.claim.job.id);
      return true;
    }
    spdlog::warn("media: {}: {}", r.claim.job.id, fin.error().message);
    return true;
  }
  if (outcome.ok()) {
    spdlog::info("media: {} done", r.claim.job.id);
  } else {
    spdlog::warn("media: {} attempt {} failed: {}", r.claim.job.id,
                 r.claim.epoch, outcome.error().message);
  }
  if (auto a = Advance(r.video_id); !a.ok())
    spdlog::warn("media: {}: {}", r.video_id, a.error().message);
  Wake();
  return true;
}

// New work wakes the idle workers at once (not at their next poll: the
// poll is for jobs other nodes queue).
void Pipeline::Wake() {
  {
    std::lock_guard lock(mu_);
    ++wakes_;
  }
  cv_.notify_all();
}

void Pipeline::WorkerLoop() {
  for (;;) {
    uint64_t seen;
    {
      std::lock_guard lock(mu_);
      if (stopping_)
        return;
      seen = wakes_;
    }
    auto ran = RunOnce();
    if (ran.ok() && *ran)
      continue;
    if (!ran.ok())
      spdlog::warn("media: cannot read the job queue: {}", ran.error().message);
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, options_.idle_poll, [&] { return stopping_ || wakes_ != seen; });
  }
}

void Pipeline::HeartbeatLoop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, queue_.options().renew_interval,
                 [&] { return stopping_; });
    if (stopping_)
      return;
    // Under mu_: a Running lives until its worker takes it out of running_.
    for (Running *r : running_) {
      auto st = queue_.Heartbeat(r->claim);
      if (st.ok() && *st != LeaseState::kHeld)
        r->cancel = true;
    }
  }
}

Result<ProcessResult>
Pipeline::RunFfmpeg(Running &r, std::vector<std::string> argv,
                    std::function<void(std::string_view)> on_line) {
  ProcessSpec spec;
  spec.argv = std::move(argv);
  spec.limits.timeout = options_.job_timeout;
  spec.limits.cpu_seconds = options_.cpu_seconds;
  spec.limits.address_space_bytes = options_.address_space_bytes;
  spec.on_stdout_line = std::move(on_line);
  spec.cancel = &r.cancel;
  auto res = runner_.Run(spec);
  if (!res.ok())
    return res.error();
  if (res->end == ProcessEnd::kCancelled)
    return MakeError(errc::cancelled, "the job was stopped");
  return res;
}

Result<void> Pipeline::EnsureDir(const std::string &dir) {
  // The store creates parents on write; ffmpeg needs the directory itself.
  auto w = streams_.WriteAtomic(dir + "/.dir", "");
  if (!w.ok())
    return MakeError(errc::storage, w.error().message);
  (void)streams_.Remove(dir + "/.dir");
  return Ok();
}

Result<MediaInfo> Pipeline::LoadInfo(const std::string &id) {
  auto text = streams_.ReadAll(ProbePath(id), options_.max_probe_bytes);
  if (!text.ok())
    return MakeError(errc::storage,
                     "the probe result is unreadable: " + text.error().message);
  return ParseProbe(*text);
}

Result<void> Pipeline::RunJob(Running &r) {
  const std::string &kind = r.claim.job.spec.kind;
  if (kind == "probe")
    return RunProbe(r);
  auto info = LoadInfo(r.video_id);
  if (!info.ok())
    return info.error();
  if (kind == "thumbnails")
    return RunThumbnails(r, *info);
  if (kind == "copy")
    return RunCopy(r, *info);
  if (kind == "ladder")
    return RunLadder(r, *info);
  return MakeError(errc::unplayable, "unknown job kind " + kind);
}

Result<void> Pipeline::RunProbe(Running &r) {
  std::string out;
  bool too_big = false;
  auto res = RunFfmpeg(
      r, ProbeArgs(options_.ffprobe, options_.original_path(r.video_id)),
      [&](std::string_view line) {
        if (out.size() + line.size() + 1 > options_.max_probe_bytes) {
          too_big = true;
          return;
        }
        out.append(line);
        out.push_back('\n');
      });
  if (!res.ok())
    return res.error();
  if (res->end == ProcessEnd::kExited && res->exit_code != 0)
    return UnreadableFileError(res->stderr_tail);
  if (!res->success())
    return Failed("ffprobe", *res);
  if (too_big)
    return MakeError(errc::bad_output, "ffprobe printed more than expected");
  auto info = ParseProbe(out);
  if (!info.ok())
    return info.error();
  HUB_TRY(CheckPlayable(*info, options_.limits));
  HUB_TRY(CheckTail(r, *info));
  auto w = streams_.WriteAtomic(r.claim.work_dir + "/ffprobe.json", out);
  if (!w.ok())
    return MakeError(errc::storage, w.error().message);
  return Ok();
}

Result<void> Pipeline::CheckTail(Running &r, const MediaInfo &info) {
  std::string tail;
  auto res = RunFfmpeg(
      r, TailArgs(options_.ffprobe, options_.original_path(r.video_id), info.duration_s),
      [&](std::string_view line) {
        if (tail.size() + line.size() < options_.max_probe_bytes) {
          tail.append(line);
          tail.push_back('\n');
        }
      });
  if (!res.ok())
    return res.error();
  if (res->end != ProcessEnd::kExited)
    return Failed("ffprobe", *res);
  // A non-zero exit without "partial file" is not evidence of a cut: the
  // encoders decide then.
  return CheckComplete(info, tail, res->stderr_tail, info.size_bytes);
}

Result<void> Pipeline::RunThumbnails(Running &r, const MediaInfo &info) {
  const std::string &work = r.claim.work_dir;
  const std::string input = options_.original_path(r.video_id);
  HUB_TRY(EnsureDir(work));
  const std::string large = work + "/poster_large.jpg",
                    small = work + "/poster_small.jpg";
  // Bright keyframes first (a fraction of the decoding); then every frame;
  // then dark ones too when nothing brighter exists.
  const std::pair<bool, bool> kTries[] = {{true, true}, {true, false}, {false, false}};
  for (auto [skip_dark, keyframes_only] : kTries) {
    auto res =
        RunFfmpeg(r, PosterArgs(options_.ffmpeg, input, info, options_.poster,
                                Abs(large), Abs(small), skip_dark, keyframes_only));
    if (!res.ok())
      return res.error();
    if (!res->success())
      return Failed("ffmpeg (poster)", *res);
    if (streams_.Stat(large).ok())
      break; // else: no bright keyframe (or no bright frame at all): the next try
  }
  if (!streams_.Stat(large).ok() || !streams_.Stat(small).ok()) {
    return MakeError(errc::bad_output, "ffmpeg wrote no poster image");
  }
  SpritePlan plan = PlanSprite(info, options_.sprite);
  // Keyframes first (a fraction of the decoding); a source with too few
  // keyframes for the plan (one every 10 s, or only the first) is decoded
  // in full.
  for (bool keyframes_only : {true, false}) {
    auto res = RunFfmpeg(r, SpriteArgs(options_.ffmpeg, input, plan,
                                       Abs(work) + "/sprite_%03d.jpg", keyframes_only));
    if (!res.ok())
      return res.error();
    if (!res->success())
      return Failed("ffmpeg (sprite)", *res);
    char last[32];
    std::snprintf(last, sizeof last, "/sprite_%03d.jpg", plan.sheets - 1);
    if (streams_.Stat(work + "/sprite_000.jpg").ok() && streams_.Stat(work + last).ok())
      break;
  }
  if (!streams_.Stat(work + "/sprite_000.jpg").ok())
    return MakeError(errc::bad_output, "ffmpeg wrote no sprite sheet");
  auto w = streams_.WriteAtomic(work + "/sprite.vtt",
                                WebVttSprite(plan, info.duration_s));
  if (!w.ok())
    return MakeError(errc::storage, w.error().message);
  return Ok();
}

Result<void> Pipeline::ValidateDir(const std::string &dir,
                                   const std::string &name, double duration,
                                   bool exact) {
  const std::string base = dir + "/" + name + "/";
  auto text = streams_.ReadAll(base + kMediaPlaylistName, kMaxPlaylistBytes);
  if (!text.ok())
    return MakeError(errc::bad_output, "ffmpeg wrote no playlist for " + name);
  auto pl = ParseMediaPlaylist(*text);
  if (!pl.ok())
    return pl.error();
  ValidationOptions vo;
  vo.segment_seconds = options_.ladder.segment_seconds;
  vo.exact_durations = exact;
  return ValidateRendition(
      *pl,
      [&](const std::string &uri) -> std::optional<uint64_t> {
        auto st = streams_.Stat(base + uri);
        if (!st.ok())
          return std::nullopt;
        return st->size;
      },
      duration, vo);
}

Result<void> Pipeline::RunCopy(Running &r, const MediaInfo &info) {
  if (!CanStreamCopy(info))
    return MakeError(errc::unplayable,
                     "the source cannot be packaged by stream copy");
  Rendition copy = PlanCopy(info);
  for (const auto &d : RenditionDirs({copy}, r.claim.work_dir))
    HUB_TRY(EnsureDir(d));
  auto res = RunFfmpeg(
      r, FfmpegCopyArgs(options_.ffmpeg, options_.original_path(r.video_id),
                        copy, options_.ladder, Abs(r.claim.work_dir)));
  if (!res.ok())
    return res.error();
  if (!res->success())
    return Failed("ffmpeg (copy)", *res);
  return Explain(ValidateDir(r.claim.work_dir, copy.name, info.duration_s, false),
                 r.claim.work_dir);
}

Result<void> Pipeline::RunLadder(Running &r, const MediaInfo &info) {
  auto plan = PlanLadder(info, options_.ladder);
  if (plan.empty())
    return MakeError(errc::unplayable, "The video is too small to convert.");
  for (const auto &d : RenditionDirs(plan, r.claim.work_dir))
    HUB_TRY(EnsureDir(d));
  ProgressParser parser(info.duration_s);
  auto res = RunFfmpeg(
      r,
      FfmpegLadderArgs(options_.ffmpeg, options_.original_path(r.video_id),
                       plan, options_.ladder, Abs(r.claim.work_dir)),
      [&](std::string_view line) {
        if (auto u = parser.Feed(line); u && !u->end)
          ReportProgress(r.video_id, u->percent);
      });
  if (!res.ok())
    return res.error();
  if (!res->success())
    return Failed("ffmpeg (ladder)", *res);
  for (const auto &rend : plan)
    HUB_TRY(Explain(ValidateDir(r.claim.work_dir, rend.name, info.duration_s, true),
                    r.claim.work_dir));
  return Ok();
}

Result<void> Pipeline::Explain(Result<void> validation, const std::string &work) {
  if (validation.ok())
    return validation;
  // ffmpeg's HLS muxer exits 0 and says nothing when a write fails with
  // ENOSPC (it leaves a short segment and an empty playlist), so a rendition
  // that does not validate may just be a full disk: find out by writing.
  static const std::string kProbe(1 << 20, '\0');
  const std::string path = work + "/.space-check";
  auto w = streams_.WriteAtomic(path, kProbe);
  (void)streams_.Remove(path);
  if (!w.ok() && w.code() == storage::errc::no_space)
    return MakeError(errc::storage,
                     "The streams storage (STREAMS_DIR) is full: ffmpeg could not write the "
                     "rendition. The job is retried later; free some space.");
  return validation;
}

Result<void> Pipeline::WriteMaster(const std::string &id) {
  std::lock_guard lock(master_mu_);
  auto info = LoadInfo(id);
  if (!info.ok())
    return info.error();
  std::vector<VariantStream> variants;
  auto add = [&](const Rendition &rend,
                 const std::string &dir) -> Result<void> {
    const std::string base = id + "/hls/" + dir + "/";
    auto text = streams_.ReadAll(base + kMediaPlaylistName, kMaxPlaylistBytes);
    if (!text.ok())
      return MakeError(errc::storage, text.error().message);
    auto pl = ParseMediaPlaylist(*text);
    if (!pl.ok())
      return pl.error();
    auto bw = MeasureBandwidth(
        *pl, [&](const std::string &uri) -> std::optional<uint64_t> {
          auto st = streams_.Stat(base + uri);
          if (!st.ok())
            return std::nullopt;
          return st->size;
        });
    if (!bw.ok())
      return bw.error();
    variants.push_back(
        VariantStream{rend, *bw, dir + "/" + kMediaPlaylistName});
    return Ok();
  };
  if (streams_.Stat(id + "/hls/ladder").ok()) {
    auto plan = PlanLadder(*info, options_.ladder);
    // Players start with the first variant: a middle one (<= 720p) starts
    // quickly on most connections, ABR moves up from there.
    auto first = std::find_if(plan.begin(), plan.end(), [](const Rendition &x) {
      return std::min(x.width, x.height) <= 720;
    });
    if (first != plan.end())
      std::rotate(plan.begin(), first, first + 1);
    for (const auto &rend : plan)
      HUB_TRY(add(rend, "ladder/" + rend.name));
  } else if (streams_.Stat(id + "/hls/copy").ok() && CanStreamCopy(*info)) {
    Rendition copy = PlanCopy(*info);
    HUB_TRY(add(copy, "copy/" + copy.name));
  }
  if (variants.empty())
    return Ok();
  auto w = streams_.WriteAtomic(MasterPath(id), MasterPlaylist(variants));
  if (!w.ok())
    return MakeError(errc::storage, w.error().message);
  return Ok();
}

Result<void> Pipeline::Advance(const std::string &id) {
  if (!IsValidId(id))
    return MakeError(errc::bad_output, "invalid video id");
  auto list = queue_.ListForVideo(id);
  if (!list.ok())
    return list.error();
  std::map<std::string, JobStatus> by;
  for (auto &s : *list) {
    if (s.state == JobState::kCancelled)
      return Ok(); // deleted: nothing more to do
    by[s.job.spec.kind] = std::move(s);
  }
  auto enqueue = [&](const std::string &kind,
                     const std::string &output) -> Result<bool> {
    if (by.count(kind))
      return false;
    auto e = queue_.Enqueue(JobSpec{id, kind, json::object(), output});
    if (!e.ok()) {
      if (e.code() == errc::cancelled)
        return false;
      return e.error();
    }
    return true;
  };
  auto probe = by.find("probe");
  if (probe == by.end()) {
    auto e = enqueue("probe", id + "/probe");
    if (!e.ok())
      return e.error();
    if (*e)
      Report(id, {{"status", "queued"}, {"progress", 0}});
    Wake();
    return Ok();
  }
  switch (probe->second.state) {
  case JobState::kFailed:
    Report(id, {{"status", "failed"}, {"error", probe->second.error}});
    return Ok();
  case JobState::kSucceeded:
    break;
  default:
    return Ok();
  }
  auto info = LoadInfo(id);
  if (!info.ok())
    return info.error();
  json patch = {{"info", InfoJson(*info)}};
  bool queued = false;
  if (CanStreamCopy(*info)) {
    auto e = enqueue("copy", id + "/hls/copy");
    if (!e.ok())
      return e.error();
    queued |= *e;
  }
  auto state_of = [&](const char *kind) {
    auto it = by.find(kind);
    return it == by.end() ? JobState::kPending : it->second.state;
  };
  auto thumbnails = enqueue("thumbnails", id + "/thumbs");
  if (!thumbnails.ok())
    return thumbnails.error();
  queued |= *thumbnails;
  // The ladder after the posters (seconds), so the library shows a picture
  // early; the queue alone would order same-millisecond jobs by name.
  if (state_of("thumbnails") == JobState::kSucceeded ||
      state_of("thumbnails") == JobState::kFailed) {
    auto e = enqueue("ladder", id + "/hls/ladder");
    if (!e.ok())
      return e.error();
    queued |= *e;
  }
  if (queued)
    Wake();
  bool hls = state_of("copy") == JobState::kSucceeded ||
             state_of("ladder") == JobState::kSucceeded;
  if (state_of("thumbnails") == JobState::kSucceeded)
    patch["thumbs"] = true;
  if (hls) {
    if (auto m = WriteMaster(id); !m.ok())
      return m.error();
    patch["hls"] = true;
  }
  if (state_of("ladder") == JobState::kSucceeded) {
    json names = json::array();
    for (const auto &rend : PlanLadder(*info, options_.ladder))
      names.push_back(rend.name);
    patch["renditions"] = names;
    patch["status"] = "ready";
    patch["progress"] = 100;
  } else if (state_of("ladder") == JobState::kFailed) {
    patch["status"] = "failed";
    patch["error"] =
        "The video could not be converted for streaming: " + by["ladder"].error;
  }
  Report(id, patch);
  return Ok();
}

} // namespace hub::media
