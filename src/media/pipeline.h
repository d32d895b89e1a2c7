#pragma once
// Pipeline: the workers that turn an uploaded original into posters, seek
// previews and adaptive HLS, one job at a time from the JobQueue.
//
// Per video, jobs chain (each persisted by the queue, so a restart resumes):
//   probe       ffprobe -> <id>/probe/ffprobe.json; unplayable -> failed with a
//   sentence copy        (only when CanStreamCopy) -c copy ->
//   <id>/hls/copy/source/  (seconds) thumbnails  posters (large, small) +
//   sprite sheets + sprite.vtt -> <id>/thumbs/ ladder      one ffmpeg, every
//   rung -> <id>/hls/ladder/<rung>/
// Paths are in the streams store (STREAMS_DIR). Every job writes into its
// hidden work dir and is renamed into place only when validated; the master
// playlist <id>/hls/master.m3u8 is rewritten atomically (WriteAtomic) from
// what is in place: the copy rendition first, the full ladder once done.
//
// What happens is reported through Options::on_media as partial JSON
// objects (fields of the video's `media`, see docs/api.md):
//   {"status": "queued"|"processing"|"ready"|"failed", "progress": 0..100,
//    "error": "...", "info": {...probe...}, "hls": true, "thumbs": true,
//    "renditions": ["720p", ...]}
// Progress is throttled: at most one report per second per video and only
// when the whole percent changes.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "core/result.h"
#include "media/jobs.h"
#include "media/ladder.h"
#include "media/probe.h"
#include "media/runner.h"
#include "media/thumbnails.h"
#include "storage/store.h"

namespace hub::media {

struct PipelineOptions {
  int workers = 1; // MEDIA_WORKERS (app default: max(1, cores / 2))
  // Local file-system path of the streams store's root: ffmpeg writes there.
  std::string streams_root;
  // Local path of a video's original (read by ffprobe/ffmpeg).
  std::function<std::string(const std::string &video_id)> original_path;
  // Called with (video id, partial media JSON) on every change; must be
  // quick-ish (it may write the video's overlay) and thread-safe.
  std::function<void(const std::string &, const nlohmann::json &)> on_media;
  std::string ffmpeg = "ffmpeg";
  std::string ffprobe = "ffprobe";
  MediaLimits limits;   // MEDIA_MAX_HEIGHT, MEDIA_MAX_DURATION_S
  LadderOptions ladder; // MEDIA_LADDER
  PosterOptions poster;
  SpriteOptions sprite;
  std::chrono::milliseconds job_timeout{3600 *
                                        1000}; // MEDIA_JOB_TIMEOUT_S per ffmpeg
  int64_t cpu_seconds = 0; // RLIMIT_CPU per ffmpeg; 0 = 4 x timeout x 1 s
  uint64_t address_space_bytes = 8ull << 30; // RLIMIT_AS per ffmpeg (8 GiB)
  std::chrono::milliseconds idle_poll{
      1000}; // TryClaim again after this when idle
  std::chrono::milliseconds progress_interval{1000};
  size_t max_probe_bytes = 1 << 20; // bound on ffprobe's JSON
};

// Thread-safe. Not owned: store, queue, runner and clock must outlive it.
class Pipeline {
public:
  Pipeline(storage::Store &streams, JobQueue &queue, ProcessRunner &runner,
           const Clock &clock, PipelineOptions options);
  ~Pipeline(); // Stop()s

  // Starts the workers and the heartbeat thread.
  void Start();
  // Stops claiming, kills running ffmpegs (their jobs are redone after a
  // restart, from a clean state), joins every thread. Idempotent.
  void Stop();

  // The upload of `video_id` is complete: queue its probe.
  Result<void> Submit(const std::string &video_id);
  // The video was deleted: cancel its jobs, kill its running ffmpeg, remove
  // its files under the streams store. Idempotent.
  Result<void> Cancel(const std::string &video_id);
  // The deleted video was reclaimed: drop its job records too.
  Result<void> Forget(const std::string &video_id);
  // Looks at the video's jobs and queues what comes next, reports the final
  // state when there is one, rewrites the master. Idempotent; used after
  // every job and at start-up / sweeps for videos still processing.
  Result<void> Advance(const std::string &video_id);

  // Runs one claimable job on the calling thread (tests). False when none.
  Result<bool> RunOnce();

  // Store paths.
  static std::string ProbePath(const std::string &id) {
    return id + "/probe/ffprobe.json";
  }
  static std::string MasterPath(const std::string &id) {
    return id + "/hls/master.m3u8";
  }

private:
  struct Running {
    std::string video_id;
    Claim claim;
    std::atomic<bool> cancel{false};
  };
  void WorkerLoop();
  void Wake();
  void HeartbeatLoop();
  Result<void> RunJob(Running &r);
  Result<void> RunProbe(Running &r);
  Result<void> CheckTail(Running &r, const MediaInfo &info);
  Result<void> Explain(Result<void> validation, const std::string &work);
  Result<void> RunThumbnails(Running &r, const MediaInfo &info);
  Result<void> RunCopy(Running &r, const MediaInfo &info);
  Result<void> RunLadder(Running &r, const MediaInfo &info);
  Result<ProcessResult>
  RunFfmpeg(Running &r, std::vector<std::string> argv,
            std::function<void(std::string_view)> on_line = {});
  Result<MediaInfo> LoadInfo(const std::string &id);
  Result<void> EnsureDir(const std::string &dir);
  Result<void> ValidateDir(const std::string &dir, const std::string &name,
                           double duration, bool exact);
  Result<void> WriteMaster(const std::string &id);
  void Report(const std::string &id, const nlohmann::json &patch);
  void ReportProgress(const std::string &id, double percent);
  std::string Abs(const std::string &store_path) const;

  storage::Store &streams_;
  JobQueue &queue_;
  ProcessRunner &runner_;
  const Clock &clock_;
  PipelineOptions options_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool started_ = false;
  bool stopping_ = false;
  uint64_t wakes_ = 0;  // guarded by mu_: bumped by Wake()
  std::vector<std::thread> threads_;
  std::vector<Running *> running_; // guarded by mu_
  std::map<std::string, std::pair<int64_t, int>>
      progress_;         // id -> (last ms, last %), mu_
  std::mutex master_mu_; // serialises master rewrites
};

} // namespace hub::media
