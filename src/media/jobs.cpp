#include "media/jobs.h"

#include <algorithm>
#include <charconv>

#include "core/ids.h"

namespace hub::media {
namespace {

using json = nlohmann::json;
using serr = storage::errc;

constexpr size_t kMaxRecordBytes = 256 * 1024;

Error FromStorage(const Error& e) {
  return MakeError(errc::storage, "the shared storage failed (" + e.message + "); retry later");
}

bool ValidKind(std::string_view k) {
  if (k.empty() || k.size() > 32) return false;
  return std::all_of(k.begin(), k.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

uint64_t Fnv1a64(std::string_view a, std::string_view b) {
  uint64_t h = 1469598103934665603ULL;
  auto mix = [&](std::string_view s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 1099511628211ULL;
    }
  };
  mix(a);
  mix(std::string_view("\0", 1));
  mix(b);
  // Final avalanche (splitmix64), so that close names spread well.
  h += 0x9e3779b97f4a7c15ULL;
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
  return h ^ (h >> 31);
}

}  // namespace

std::string_view ToString(JobState s) {
  switch (s) {
    case JobState::kPending: return "pending";
    case JobState::kRunning: return "running";
    case JobState::kRetryWait: return "retry_wait";
    case JobState::kSucceeded: return "succeeded";
    case JobState::kFailed: return "failed";
    case JobState::kCancelled: return "cancelled";
  }
  return "unknown";
}

// ---- RendezvousOwnership ----

void RendezvousOwnership::SetMembers(std::vector<std::string> members) {
  if (std::find(members.begin(), members.end(), self_) == members.end()) members.push_back(self_);
  std::sort(members.begin(), members.end());
  members.erase(std::unique(members.begin(), members.end()), members.end());
  std::lock_guard lock(mu_);
  members_ = std::move(members);
}

std::string RendezvousOwnership::OwnerOf(std::string_view job_id) const {
  std::lock_guard lock(mu_);
  if (members_.empty()) return self_;
  const std::string* best = nullptr;
  uint64_t best_h = 0;
  for (const auto& m : members_) {
    uint64_t h = Fnv1a64(m, job_id);
    if (best == nullptr || h > best_h || (h == best_h && m < *best)) {
      best = &m;
      best_h = h;
    }
  }
  return *best;
}

bool RendezvousOwnership::ShouldClaim(std::string_view job_id) const { return OwnerOf(job_id) == self_; }

// ---- JobQueue ----

JobQueue::JobQueue(storage::Store& store, const Clock& clock, const Ownership& ownership,
                   JobQueueOptions options)
    : store_(store), clock_(clock), ownership_(ownership), options_(std::move(options)) {}

std::string JobQueue::JobId(const std::string& video_id, const std::string& kind) {
  return video_id + "." + kind;
}

std::string JobQueue::Path(const std::string& job_id, const std::string& rest) const {
  return options_.dir + "/" + job_id + (rest.empty() ? "" : "/" + rest);
}

std::string JobQueue::WorkDir(const JobSpec& spec, int epoch) const {
  if (spec.output.empty()) return {};
  auto slash = spec.output.rfind('/');
  std::string parent = slash == std::string::npos ? "" : spec.output.substr(0, slash + 1);
  std::string leaf = slash == std::string::npos ? spec.output : spec.output.substr(slash + 1);
  return parent + ".work-" + leaf + "-" + std::to_string(epoch);
}

Result<bool> JobQueue::Exists(const std::string& path) {
  auto st = store_.Stat(path);
  if (st.ok()) return true;
  if (st.code() == serr::not_found) return false;
  return FromStorage(st.error());
}

Result<bool> JobQueue::IsCancelled(const Job& job) {
  auto a = Exists(Path(job.id, "cancel"));
  if (!a.ok() || *a) return a;
  return Exists(options_.dir + "/cancelled/" + job.spec.video_id);
}

Result<Job> JobQueue::Enqueue(const JobSpec& spec) {
  if (!IsValidId(spec.video_id) || !ValidKind(spec.kind)) {
    return MakeError(errc::bad_output, "invalid job: video '" + spec.video_id + "', kind '" + spec.kind + "'");
  }
  if (!spec.output.empty() && !storage::IsValidPath(spec.output)) {
    return MakeError(errc::bad_output, "invalid job output path '" + spec.output + "'");
  }
  Job job{JobId(spec.video_id, spec.kind), spec, clock_.NowUnixMillis()};
  auto cancelled = IsCancelled(job);
  if (!cancelled.ok()) return cancelled.error();
  if (*cancelled) return MakeError(errc::cancelled, "the video was deleted");
  json j = {{"id", job.id},         {"video", spec.video_id}, {"kind", spec.kind},
            {"params", spec.params}, {"output", spec.output},  {"created_ms", job.created_ms}};
  auto r = store_.CreateExclusive(Path(job.id, "job.json"), j.dump());
  if (r.ok()) return job;
  if (r.code() == serr::already_exists) return ReadJob(job.id);
  return FromStorage(r.error());
}

Result<Job> JobQueue::ReadJob(const std::string& job_id) {
  auto text = store_.ReadAll(Path(job_id, "job.json"), kMaxRecordBytes);
  if (!text.ok()) return FromStorage(text.error());
  json j = json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    // Also what a reader sees while another node is creating it.
    return MakeError(errc::storage, "the job record " + job_id + " is unreadable");
  }
  Job job;
  job.id = j.value("id", "");
  job.spec.video_id = j.value("video", "");
  job.spec.kind = j.value("kind", "");
  job.spec.params = j.value("params", json::object());
  job.spec.output = j.value("output", "");
  job.created_ms = j.value("created_ms", int64_t{0});
  if (job.id != job_id) return MakeError(errc::storage, "the job record " + job_id + " is unreadable");
  return job;
}

Result<int> JobQueue::LatestEpoch(const std::string& job_id) {
  auto names = store_.List(Path(job_id, "claims"));
  if (!names.ok()) {
    if (names.code() == serr::not_found) return 0;
    return FromStorage(names.error());
  }
  int latest = 0;
  for (const auto& n : *names) {
    int e = 0;
    auto [p, ec] = std::from_chars(n.data(), n.data() + n.size(), e);
    if (ec == std::errc() && p == n.data() + n.size() && e > latest) latest = e;
  }
  return latest;
}

std::chrono::milliseconds JobQueue::Backoff(int failed_epoch) const {
  auto d = options_.backoff_base;
  for (int i = 1; i < failed_epoch && d < options_.backoff_max; ++i) d *= 2;
  return std::min(d, options_.backoff_max);
}

bool JobQueue::LeaseStale(const std::string& claim_path, int64_t mtime) {
  const int64_t now = clock_.NowUnixNanos();
  std::lock_guard lock(mu_);
  auto [it, fresh] = seen_.try_emplace(claim_path, Seen{mtime, now});
  if (!fresh && it->second.mtime != mtime) it->second = Seen{mtime, now};
  return now - it->second.since_ns >=
         std::chrono::duration_cast<std::chrono::nanoseconds>(options_.lease_timeout).count();
}

Result<void> JobQueue::RecordDone(const Job& job, bool ok, const std::string& error) {
  json j = {{"ok", ok}, {"error", error}, {"node", options_.node_id},
            {"finished_ms", clock_.NowUnixMillis()}};
  auto r = store_.CreateExclusive(Path(job.id, "done.json"), j.dump());
  if (!r.ok() && r.code() != serr::already_exists) return FromStorage(r.error());
  std::lock_guard lock(mu_);
  for (auto it = seen_.lower_bound(Path(job.id, "")); it != seen_.end() && it->first.starts_with(Path(job.id, ""));) {
    it = seen_.erase(it);
  }
  return Ok();
}

Result<void> JobQueue::CreateClaim(const Job& job, int epoch, std::optional<Claim>* out) {
  json j = {{"node", options_.node_id}, {"epoch", epoch}, {"claimed_ms", clock_.NowUnixMillis()}};
  auto r = store_.CreateExclusive(Path(job.id, "claims/" + std::to_string(epoch)), j.dump());
  if (r.code() == serr::already_exists) return Ok();  // another node won the race
  if (!r.ok()) return FromStorage(r.error());
  // Earlier attempts' leftovers (a crash mid-encode) go before we start.
  for (int e = 1; e <= epoch && !job.spec.output.empty(); ++e) {
    auto rm = store_.RemoveAll(WorkDir(job.spec, e));
    if (!rm.ok()) return FromStorage(rm.error());
  }
  *out = Claim{job, epoch, WorkDir(job.spec, epoch)};
  return Ok();
}

Result<std::optional<Claim>> JobQueue::TryClaimJob(const std::string& job_id) {
  std::optional<Claim> none;
  auto done = Exists(Path(job_id, "done.json"));
  if (!done.ok()) return done.error();
  if (*done) return none;
  auto job = ReadJob(job_id);
  if (!job.ok()) return none;  // being created, or damaged: not runnable
  auto cancelled = IsCancelled(*job);
  if (!cancelled.ok()) return cancelled.error();
  if (*cancelled) return none;
  auto epoch = LatestEpoch(job_id);
  if (!epoch.ok()) return epoch.error();
  const int e = *epoch;
  std::optional<Claim> claim;
  if (e == 0) {
    HUB_TRY(CreateClaim(*job, 1, &claim));
    return claim;
  }
  auto failed = store_.ReadAll(Path(job_id, "attempts/" + std::to_string(e) + ".json"), kMaxRecordBytes);
  if (failed.ok()) {
    json j = json::parse(*failed, nullptr, false);
    int64_t failed_ms = j.is_object() ? j.value("failed_ms", int64_t{0}) : 0;
    if (e >= options_.max_attempts) {
      // Its claimant recorded the failure but died before done.json.
      HUB_TRY(RecordDone(*job, false, j.is_object() ? j.value("error", "") : ""));
      return none;
    }
    if (clock_.NowUnixMillis() < failed_ms + Backoff(e).count()) return none;
    HUB_TRY(CreateClaim(*job, e + 1, &claim));
    return claim;
  }
  if (failed.code() != serr::not_found) return FromStorage(failed.error());
  // Attempt e is running, or its node died: judge its lease.
  const std::string claim_path = Path(job_id, "claims/" + std::to_string(e));
  auto file = store_.OpenRead(claim_path);
  if (!file.ok()) return FromStorage(file.error());
  if (!LeaseStale(claim_path, (*file)->mtime_unix_nanos())) return none;
  if (e >= options_.max_attempts) {
    HUB_TRY(RecordDone(*job, false,
                       "Processing stopped responding " + std::to_string(e) +
                           " times (the server running it crashed or was restarted)."));
    return none;
  }
  HUB_TRY(CreateClaim(*job, e + 1, &claim));
  return claim;
}

Result<std::optional<Claim>> JobQueue::TryClaim() {
  auto ids = store_.List(options_.dir);
  if (!ids.ok()) {
    if (ids.code() == serr::not_found) return std::optional<Claim>{};
    return FromStorage(ids.error());
  }
  // Video ids sort by creation time, so this is oldest video first.
  std::optional<Error> first_error;
  for (const auto& id : *ids) {
    if (id.find('.') == std::string::npos) continue;  // "cancelled/"
    if (!ownership_.ShouldClaim(id)) continue;
    auto c = TryClaimJob(id);
    if (!c.ok()) {
      if (!first_error) first_error = c.error();
      continue;  // one bad job must not block the others
    }
    if (*c) return c;
  }
  if (first_error) return *first_error;
  return std::optional<Claim>{};
}

Result<LeaseState> JobQueue::Heartbeat(const Claim& claim) {
  auto cancelled = IsCancelled(claim.job);
  if (!cancelled.ok()) return cancelled.error();
  if (*cancelled) return LeaseState::kCancelled;
  auto next = Exists(Path(claim.job.id, "claims/" + std::to_string(claim.epoch + 1)));
  if (!next.ok()) return next.error();
  if (*next) return LeaseState::kLost;
  auto t = store_.Touch(Path(claim.job.id, "claims/" + std::to_string(claim.epoch)));
  if (t.code() == serr::not_found) return LeaseState::kLost;
  if (!t.ok()) return FromStorage(t.error());
  return LeaseState::kHeld;
}

Result<void> JobQueue::Finish(const Claim& claim, const Result<void>& outcome) {
  auto discard = [&]() -> Result<void> {
    if (claim.work_dir.empty()) return Ok();
    auto rm = store_.RemoveAll(claim.work_dir);
    if (!rm.ok()) return FromStorage(rm.error());
    return Ok();
  };
  auto state = Heartbeat(claim);
  if (!state.ok()) return state.error();
  if (*state != LeaseState::kHeld) {
    HUB_TRY(discard());
    if (*state == LeaseState::kCancelled) return MakeError(errc::cancelled, "the video was deleted");
    return MakeError(errc::lost, "another node took over job " + claim.job.id);
  }
  if (outcome.ok()) {
    if (!claim.work_dir.empty()) {
      auto has_output = Exists(claim.job.spec.output);
      if (!has_output.ok()) return has_output.error();
      if (*has_output) {
        // An earlier attempt published and died before done.json: its
        // output is complete (renamed whole), keep it.
        HUB_TRY(discard());
      } else {
        auto mv = store_.Rename(claim.work_dir, claim.job.spec.output);
        if (!mv.ok()) {
          // Not published: a failed attempt like any other.
          return Finish(claim, MakeError(errc::storage, "could not publish the result: " + mv.error().message));
        }
      }
    }
    return RecordDone(claim.job, true, "");
  }
  HUB_TRY(discard());
  const Error& err = outcome.error();
  json j = {{"error", err.message}, {"code", err.code.value()}, {"category", err.code.category().name()},
            {"node", options_.node_id}, {"failed_ms", clock_.NowUnixMillis()}};
  auto w = store_.WriteAtomic(Path(claim.job.id, "attempts/" + std::to_string(claim.epoch) + ".json"), j.dump());
  if (!w.ok()) return FromStorage(w.error());
  if (err.code == errc::unplayable || claim.epoch >= options_.max_attempts) {
    return RecordDone(claim.job, false, err.message);
  }
  return Ok();
}

Result<void> JobQueue::CancelVideo(const std::string& video_id) {
  if (!IsValidId(video_id)) return MakeError(errc::bad_output, "invalid video id");
  auto m = store_.CreateExclusive(options_.dir + "/cancelled/" + video_id, "");
  if (!m.ok() && m.code() != serr::already_exists) return FromStorage(m.error());
  auto ids = store_.List(options_.dir);
  if (!ids.ok()) return ids.code() == serr::not_found ? Ok() : Result<void>(FromStorage(ids.error()));
  const std::string prefix = video_id + ".";
  for (const auto& id : *ids) {
    if (!id.starts_with(prefix)) continue;
    auto c = store_.CreateExclusive(Path(id, "cancel"), "");
    if (!c.ok() && c.code() != serr::already_exists) return FromStorage(c.error());
  }
  return Ok();
}

Result<void> JobQueue::Forget(const std::string& video_id) {
  if (!IsValidId(video_id)) return MakeError(errc::bad_output, "invalid video id");
  auto ids = store_.List(options_.dir);
  if (!ids.ok()) return ids.code() == serr::not_found ? Ok() : Result<void>(FromStorage(ids.error()));
  const std::string prefix = video_id + ".";
  for (const auto& id : *ids) {
    if (!id.starts_with(prefix)) continue;
    auto r = store_.RemoveAll(options_.dir + "/" + id);
    if (!r.ok() && r.code() != serr::not_found) return FromStorage(r.error());
  }
  auto m = store_.Remove(options_.dir + "/cancelled/" + video_id);
  if (!m.ok() && m.code() != serr::not_found) return FromStorage(m.error());
  return Ok();
}

Result<JobStatus> JobQueue::Status(const std::string& job_id) {
  auto job = ReadJob(job_id);
  if (!job.ok()) return job.error();
  JobStatus st;
  st.job = *job;
  auto epoch = LatestEpoch(job_id);
  if (!epoch.ok()) return epoch.error();
  st.attempts = *epoch;
  auto done = store_.ReadAll(Path(job_id, "done.json"), kMaxRecordBytes);
  if (done.ok()) {
    json j = json::parse(*done, nullptr, false);
    bool ok = j.is_object() && j.value("ok", false);
    st.state = ok ? JobState::kSucceeded : JobState::kFailed;
    st.error = j.is_object() ? j.value("error", "") : "";
    st.node = j.is_object() ? j.value("node", "") : "";
    return st;
  }
  auto cancelled = IsCancelled(*job);
  if (!cancelled.ok()) return cancelled.error();
  if (*cancelled) {
    st.state = JobState::kCancelled;
    return st;
  }
  if (st.attempts == 0) return st;
  auto failed = store_.ReadAll(Path(job_id, "attempts/" + std::to_string(st.attempts) + ".json"), kMaxRecordBytes);
  if (failed.ok()) {
    json j = json::parse(*failed, nullptr, false);
    st.state = JobState::kRetryWait;
    st.error = j.is_object() ? j.value("error", "") : "";
    st.node = j.is_object() ? j.value("node", "") : "";
    return st;
  }
  auto claim = store_.ReadAll(Path(job_id, "claims/" + std::to_string(st.attempts)), kMaxRecordBytes);
  st.state = JobState::kRunning;
  if (claim.ok()) {
    json j = json::parse(*claim, nullptr, false);
    st.node = j.is_object() ? j.value("node", "") : "";
  }
  return st;
}

Result<std::vector<JobStatus>> JobQueue::ListForVideo(const std::string& video_id) {
  std::vector<JobStatus> out;
  auto ids = store_.List(options_.dir);
  if (!ids.ok()) {
    if (ids.code() == serr::not_found) return out;
    return FromStorage(ids.error());
  }
  const std::string prefix = video_id + ".";
  for (const auto& id : *ids) {
    if (!id.starts_with(prefix)) continue;
    auto st = Status(id);
    if (st.ok()) out.push_back(std::move(*st));
  }
  return out;
}

}  // namespace hub::media
