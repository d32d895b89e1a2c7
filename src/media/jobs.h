#pragma once
// The media job queue on the shared Store (ARCHITECTURE principle 2: no
// locks, one writer per file, exclusive creates as the only mutual
// exclusion). Every node runs a JobQueue over the same store; a job runs on
// one node at a time, survives crashes and restarts, and moves to another
// node when its runner dies.
//
// Layout under Options::dir (default ".jobs"; see README.md):
//   <job>/job.json          the job, immutable (CreateExclusive; Enqueue is idempotent)
//   <job>/claims/<epoch>    claim of attempt <epoch> (1, 2, ...), CreateExclusive by the
//                           node that runs it; its mtime is the lease, renewed by Touch
//   <job>/attempts/<epoch>.json  why attempt <epoch> failed (written by its claimant)
//   <job>/done.json         the outcome, CreateExclusive: exactly one ever wins
//   <job>/cancel            cancel marker of one job, CreateExclusive
//   cancelled/<video>       every job of the video, present and future (video deleted)
// Job ids are "<video id>.<kind>": video ids never contain '.'.
//
// Leases are judged by observation, not by comparing clocks: a claim is
// stale when this node has seen its mtime unchanged for lease_timeout of its
// own clock. Node clocks and the NFS server's clock may disagree; the lease
// still works. (On NFS the mtime is read through a fresh open, which
// revalidates cached attributes.)
//
// A stale claim at epoch e is superseded by a claim at e+1 (another
// CreateExclusive race: one winner). Its old holder notices at its next
// Heartbeat (claims/<e+1> exists) and stops. Work is written to a private
// work directory and renamed into place only on success, so a crashed or
// superseded attempt never leaves a half-written output visible.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "core/result.h"
#include "media/error.h"
#include "storage/store.h"

namespace hub::media {

// Who may run a job. Implementations must be thread-safe.
class Ownership {
 public:
  virtual ~Ownership() = default;
  virtual bool ShouldClaim(std::string_view job_id) const = 0;
};

// Rendezvous (highest random weight) hashing over the live members: each
// job belongs to the member with the highest hash(member, job); when that
// member leaves, only its jobs move. With no members or only `self`, every
// job is ours. Thread-safe.
class RendezvousOwnership final : public Ownership {
 public:
  explicit RendezvousOwnership(std::string self) : self_(std::move(self)) {}
  void SetMembers(std::vector<std::string> members);  // `self` is always included
  bool ShouldClaim(std::string_view job_id) const override;
  std::string OwnerOf(std::string_view job_id) const;

 private:
  std::string self_;
  mutable std::mutex mu_;
  std::vector<std::string> members_;
};

struct JobSpec {
  std::string video_id;        // must pass IsValidId (no '.')
  std::string kind;            // "probe", "thumbnails", "copy", "ladder": [a-z0-9_-]+
  nlohmann::json params = nlohmann::json::object();
  // Store path where the job's result appears (renamed from the work dir on
  // success); "" when the job produces no files.
  std::string output;
};

struct Job {
  std::string id;              // "<video_id>.<kind>"
  JobSpec spec;
  int64_t created_ms = 0;
};

enum class JobState { kPending, kRunning, kRetryWait, kSucceeded, kFailed, kCancelled };
std::string_view ToString(JobState s);

struct JobStatus {
  Job job;
  JobState state = JobState::kPending;
  int attempts = 0;            // claims made so far
  std::string error;           // last failure, or the final one
  std::string node;            // claimant of the latest attempt
};

// A job this node holds. Move-only token returned by TryClaim.
struct Claim {
  Job job;
  int epoch = 0;
  // Store path for the attempt's files, beside the output and hidden:
  // "<video>/hls" -> "<video>/.work-hls-<epoch>"; "" when there is no output.
  std::string work_dir;
};

// What Heartbeat found.
enum class LeaseState { kHeld, kLost, kCancelled };

struct JobQueueOptions {
  std::string dir = ".jobs";
  std::string node_id;                                  // required
  std::chrono::milliseconds lease_timeout{30'000};      // stale after 30 s without a renewal
  std::chrono::milliseconds renew_interval{5'000};      // Heartbeat every 5 s (the Worker does)
  int max_attempts = 3;                                 // then failed for good
  std::chrono::milliseconds backoff_base{10'000};       // 10 s, 20 s, 40 s, ...
  std::chrono::milliseconds backoff_max{600'000};
};

// Thread-safe. Not owned: store, clock and ownership must outlive it.
class JobQueue {
 public:
  JobQueue(storage::Store& store, const Clock& clock, const Ownership& ownership,
           JobQueueOptions options);

  static std::string JobId(const std::string& video_id, const std::string& kind);

  // Records the job; already there = ok (returns the stored one).
  // errc::cancelled when the video was cancelled.
  Result<Job> Enqueue(const JobSpec& spec);
  Result<JobStatus> Status(const std::string& job_id);
  Result<std::vector<JobStatus>> ListForVideo(const std::string& video_id);

  // Claims one runnable job that Ownership gives this node, oldest first:
  // never claimed, or failed and past its backoff, or its claimant's lease
  // stale. nullopt when there is nothing to do. Cleans the work dirs of
  // earlier attempts of the job it claims.
  Result<std::optional<Claim>> TryClaim();
  // Renews the lease (Touch) and reports whether the claim still holds.
  Result<LeaseState> Heartbeat(const Claim& claim);
  // Ends the attempt. On success the work dir is renamed to spec.output and
  // done.json records success. On failure the work dir is removed, the
  // attempt recorded, and the job failed for good when attempts are used up
  // or the error is errc::unplayable. If the claim was lost or the job
  // cancelled meanwhile, nothing is published: errc::lost / errc::cancelled.
  Result<void> Finish(const Claim& claim, const Result<void>& outcome);
  // Cancel markers for every job of the video (running ones stop at their
  // next Heartbeat); idempotent.
  Result<void> CancelVideo(const std::string& video_id);
  // Removes every record of the video's jobs and its cancel marker: for a
  // video whose deletion has been reclaimed (nothing enqueues for it again).
  // Records of finished jobs of live videos are kept: they say what is done.
  Result<void> Forget(const std::string& video_id);

  const JobQueueOptions& options() const { return options_; }

 private:
  struct Seen {
    int64_t mtime = 0;
    int64_t since_ns = 0;  // our clock when we first saw this mtime
  };
  std::string Path(const std::string& job_id, const std::string& rest) const;
  Result<bool> Exists(const std::string& path);
  Result<bool> IsCancelled(const Job& job);
  std::string WorkDir(const JobSpec& spec, int epoch) const;
  Result<int> LatestEpoch(const std::string& job_id);
  Result<Job> ReadJob(const std::string& job_id);
  Result<std::optional<Claim>> TryClaimJob(const std::string& job_id);
  Result<void> CreateClaim(const Job& job, int epoch, std::optional<Claim>* out);
  Result<void> RecordDone(const Job& job, bool ok, const std::string& error);
  std::chrono::milliseconds Backoff(int failed_epoch) const;
  bool LeaseStale(const std::string& claim_path, int64_t mtime);

  storage::Store& store_;
  const Clock& clock_;
  const Ownership& ownership_;
  JobQueueOptions options_;
  std::mutex mu_;
  std::map<std::string, Seen> seen_;  // claim path -> last observation
};

}  // namespace hub::media
