#include "media/jobs.h"

#include <set>
#include <thread>

#include <gtest/gtest.h>

namespace hub::media {
namespace {

using namespace std::chrono_literals;

class Everything final : public Ownership {
 public:
  bool ShouldClaim(std::string_view) const override { return true; }
};

JobQueueOptions Options(const std::string& node) {
  JobQueueOptions o;
  o.node_id = node;
  return o;  // lease 30 s, 3 attempts, backoff 10 s doubling
}

class JobsTest : public ::testing::Test {
 protected:
  JobSpec Ladder(const std::string& video) {
    return JobSpec{video, "ladder", {{"rungs", 5}}, video + "/hls"};
  }
  Claim MustClaim(JobQueue& q) {
    auto c = q.TryClaim();
    EXPECT_TRUE(c.ok()) << c.error().message;
    EXPECT_TRUE(c.ok() && c->has_value());
    return c.ok() && c->has_value() ? **c : Claim{};
  }
  bool NothingToClaim(JobQueue& q) {
    auto c = q.TryClaim();
    EXPECT_TRUE(c.ok());
    return c.ok() && !c->has_value();
  }
  void WriteOutput(const Claim& c, const std::string& name, const std::string& data = "x") {
    ASSERT_TRUE(store_->WriteAtomic(c.work_dir + "/" + name, data).ok());
  }
  bool Exists(const std::string& path) { return store_->Stat(path).ok(); }
  JobState State(JobQueue& q, const std::string& id) {
    auto st = q.Status(id);
    EXPECT_TRUE(st.ok());
    return st.ok() ? st->state : JobState::kPending;
  }

  ManualClock clock_;
  std::unique_ptr<storage::Store> store_ = storage::NewMemStore(&clock_);
  Everything everything_;
  JobQueue a_{*store_, clock_, everything_, Options("node-a")};
  JobQueue b_{*store_, clock_, everything_, Options("node-b")};
};

TEST_F(JobsTest, EnqueueIsIdempotentAndValidated) {
  auto j1 = a_.Enqueue(Ladder("vid1"));
  ASSERT_TRUE(j1.ok());
  EXPECT_EQ(j1->id, "vid1.ladder");
  clock_.Advance(1s);
  auto j2 = b_.Enqueue(Ladder("vid1"));
  ASSERT_TRUE(j2.ok());
  EXPECT_EQ(j2->created_ms, j1->created_ms);
  EXPECT_EQ(j2->spec.params["rungs"], 5);
  EXPECT_EQ(State(a_, "vid1.ladder"), JobState::kPending);
  EXPECT_FALSE(a_.Enqueue(JobSpec{"../x", "ladder"}).ok());
  EXPECT_FALSE(a_.Enqueue(JobSpec{"vid1", "Bad.Kind"}).ok());
}

TEST_F(JobsTest, SuccessPublishesTheOutputAtomically) {
  ASSERT_TRUE(a_.Enqueue(Ladder("vid1")).ok());
  Claim c = MustClaim(a_);
  EXPECT_EQ(c.epoch, 1);
  EXPECT_EQ(c.work_dir, "vid1/.work-hls-1");
  EXPECT_EQ(State(a_, "vid1.ladder"), JobState::kRunning);
  WriteOutput(c, "720p/index.m3u8");
  EXPECT_FALSE(Exists("vid1/hls"));  // nothing visible while it runs
  EXPECT_TRUE(NothingToClaim(b_));
  ASSERT_TRUE(a_.Finish(c, Ok()).ok());
  EXPECT_TRUE(Exists("vid1/hls/720p/index.m3u8"));
  EXPECT_FALSE(Exists("vid1/.work-hls-1"));
  EXPECT_EQ(State(b_, "vid1.ladder"), JobState::kSucceeded);
  EXPECT_TRUE(NothingToClaim(a_));
  EXPECT_TRUE(NothingToClaim(b_));
}

TEST_F(JobsTest, TwoNodesNeverRunOneJobTogether) {
  constexpr int kJobs = 40;
  for (int i = 0; i < kJobs; ++i) ASSERT_TRUE(a_.Enqueue(Ladder("v" + std::to_string(100 + i))).ok());
  std::mutex mu;
  std::vector<std::string> claimed;
  auto worker = [&](JobQueue& q) {
    while (true) {
      auto c = q.TryClaim();
      ASSERT_TRUE(c.ok());
      if (!c->has_value()) return;
      std::lock_guard lock(mu);
      claimed.push_back((*c)->job.id + "@" + std::to_string((*c)->epoch));
    }
  };
  std::thread ta(worker, std::ref(a_)), tb(worker, std::ref(b_));
  ta.join();
  tb.join();
  std::set<std::string> unique(claimed.begin(), claimed.end());
  EXPECT_EQ(claimed.size(), static_cast<size_t>(kJobs));
  EXPECT_EQ(unique.size(), static_cast<size_t>(kJobs));
  for (const auto& c : claimed) EXPECT_TRUE(c.ends_with("@1")) << c;
}

TEST_F(JobsTest, ALiveOwnerKeepsItsJob) {
  ASSERT_TRUE(a_.Enqueue(Ladder("vid1")).ok());
  Claim c = MustClaim(a_);
  for (int i = 0; i < 24; ++i) {  // two minutes of 5 s heartbeats
    clock_.Advance(5s);
    auto hb = a_.Heartbeat(c);
    ASSERT_TRUE(hb.ok());
    EXPECT_EQ(*hb, LeaseState::kHeld);
    EXPECT_TRUE(NothingToClaim(b_));
  }
}

TEST_F(JobsTest, ADeadOwnersJobIsTakenOverAfterTheLease) {
  ASSERT_TRUE(a_.Enqueue(Ladder("vid1")).ok());
  Claim ca = MustClaim(a_);
  WriteOutput(ca, "720p/seg_00000.ts", "half");  // then node A freezes
  EXPECT_TRUE(NothingToClaim(b_));               // B starts watching the lease
  clock_.Advance(29s);
  EXPECT_TRUE(NothingToClaim(b_));
  clock_.Advance(1s);
  Claim cb = MustClaim(b_);
  EXPECT_EQ(cb.epoch, 2);
  EXPECT_FALSE(Exists("vid1/.work-hls-1"));  // A's half-written attempt is gone
  EXPECT_FALSE(Exists("vid1/hls"));
  auto st = b_.Status("vid1.ladder");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->node, "node-b");
  EXPECT_EQ(st->attempts, 2);
  // A wakes up: it learns at once that it lost the job, and publishes nothing.
  auto hb = a_.Heartbeat(ca);
  ASSERT_TRUE(hb.ok());
  EXPECT_EQ(*hb, LeaseState::kLost);
  EXPECT_EQ(a_.Finish(ca, Ok()).code(), errc::lost);
  EXPECT_FALSE(Exists("vid1/hls"));
  WriteOutput(cb, "720p/index.m3u8");
  ASSERT_TRUE(b_.Finish(cb, Ok()).ok());
  EXPECT_TRUE(Exists("vid1/hls/720p/index.m3u8"));
  EXPECT_EQ(State(a_, "vid1.ladder"), JobState::kSucceeded);
}

TEST_F(JobsTest, LeaseIsJudgedByObservationNotByClocks) {
  // B's first look happens long after A's claim: it still waits a full lease.
  ASSERT_TRUE(a_.Enqueue(Ladder("vid1")).ok());
  MustClaim(a_);
  clock_.Advance(10min);
  EXPECT_TRUE(NothingToClaim(b_));
  clock_.Advance(30s);
  EXPECT_EQ(MustClaim(b_).epoch, 2);
}

TEST_F(JobsTest, FailuresAreRetriedWithBackoffThenFailForGood) {
  ASSERT_TRUE(a_.Enqueue(Ladder("vid1")).ok());
  Claim c1 = MustClaim(a_);
  WriteOutput(c1, "partial.ts");
  ASSERT_TRUE(a_.Finish(c1, MakeError(errc::process_failed, "ffmpeg exited with status 1")).ok());
  EXPECT_FALSE(Exists(c1.work_dir));
  auto st = a_.Status("vid1.ladder");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->state, JobState::kRetryWait);
  EXPECT_EQ(st->error, "ffmpeg exited with status 1");
  EXPECT_TRUE(NothingToClaim(b_));
  clock_.Advance(9s);
  EXPECT_TRUE(NothingToClaim(b_));
  clock_.Advance(1s);
  Claim c2 = MustClaim(b_);  // another node may take the retry
  EXPECT_EQ(c2.epoch, 2);
  ASSERT_TRUE(b_.Finish(c2, MakeError(errc::process_failed, "disk full")).ok());
  clock_.Advance(19s);
  EXPECT_TRUE(NothingToClaim(a_));
  clock_.Advance(1s);
  Claim c3 = MustClaim(a_);
  EXPECT_EQ(c3.epoch, 3);
  ASSERT_TRUE(a_.Finish(c3, MakeError(errc::process_failed, "ffmpeg was killed by signal 9")).ok());
  st = a_.Status("vid1.ladder");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->state, JobState::kFailed);
  EXPECT_EQ(st->attempts, 3);
  EXPECT_EQ(st->error, "ffmpeg was killed by signal 9");
  clock_.Advance(1h);
  EXPECT_TRUE(NothingToClaim(a_));
  EXPECT_TRUE(NothingToClaim(b_));
}

TEST_F(JobsTest, AnUnplayableFileIsNotRetried) {
  ASSERT_TRUE(a_.Enqueue(JobSpec{"vid1", "probe"}).ok());
  Claim c = MustClaim(a_);
  EXPECT_EQ(c.work_dir, "");
  ASSERT_TRUE(a_.Finish(c, MakeError(errc::unplayable, "The file has no video track; audio-only files are not supported.")).ok());
  auto st = a_.Status("vid1.probe");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->state, JobState::kFailed);
  EXPECT_EQ(st->attempts, 1);
  clock_.Advance(1h);
  EXPECT_TRUE(NothingToClaim(a_));
}

TEST_F(JobsTest, RepeatedCrashesEndAsAFailure) {
  ASSERT_TRUE(a_.Enqueue(Ladder("vid1")).ok());
  MustClaim(a_);
  for (int epoch = 2; epoch <= 3; ++epoch) {
    EXPECT_TRUE(NothingToClaim(b_));
    clock_.Advance(31s);
    EXPECT_EQ(MustClaim(b_).epoch, epoch);
  }
  EXPECT_TRUE(NothingToClaim(a_));
  clock_.Advance(31s);
  EXPECT_TRUE(NothingToClaim(a_));
  auto st = a_.Status("vid1.ladder");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->state, JobState::kFailed);
  EXPECT_NE(st->error.find("stopped responding 3 times"), std::string::npos);
}

TEST_F(JobsTest, DeletingTheVideoCancelsItsJobs) {
  ASSERT_TRUE(a_.Enqueue(Ladder("vid1")).ok());
  ASSERT_TRUE(a_.Enqueue(JobSpec{"vid1", "thumbnails", {}, "vid1/thumbs"}).ok());
  ASSERT_TRUE(a_.Enqueue(Ladder("vid2")).ok());
  Claim running = MustClaim(a_);
  ASSERT_EQ(running.job.id, "vid1.ladder");
  WriteOutput(running, "720p/seg_00000.ts");
  ASSERT_TRUE(b_.CancelVideo("vid1").ok());
  ASSERT_TRUE(b_.CancelVideo("vid1").ok());  // idempotent
  auto hb = a_.Heartbeat(running);
  ASSERT_TRUE(hb.ok());
  EXPECT_EQ(*hb, LeaseState::kCancelled);
  EXPECT_EQ(a_.Finish(running, Ok()).code(), errc::cancelled);
  EXPECT_FALSE(Exists("vid1/hls"));
  EXPECT_FALSE(Exists(running.work_dir));
  EXPECT_EQ(State(a_, "vid1.ladder"), JobState::kCancelled);
  EXPECT_EQ(State(a_, "vid1.thumbnails"), JobState::kCancelled);
  // The other video's job still runs; none of vid1's ever will.
  EXPECT_EQ(MustClaim(b_).job.id, "vid2.ladder");
  EXPECT_TRUE(NothingToClaim(a_));
  EXPECT_EQ(a_.Enqueue(JobSpec{"vid1", "copy", {}, "vid1/source"}).code(), errc::cancelled);
  auto list = a_.ListForVideo("vid1");
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), 2u);
}

TEST_F(JobsTest, ForgettingAReclaimedVideoRemovesItsRecordsOnly) {
  ASSERT_TRUE(a_.Enqueue(Ladder("vid1")).ok());
  ASSERT_TRUE(a_.Enqueue(JobSpec{"vid1", "thumbnails", {}, "vid1/thumbs"}).ok());
  ASSERT_TRUE(a_.Enqueue(Ladder("vid10")).ok());  // shares a prefix, not the id
  ASSERT_TRUE(a_.CancelVideo("vid1").ok());
  ASSERT_TRUE(b_.Forget("vid1").ok());
  ASSERT_TRUE(b_.Forget("vid1").ok());  // idempotent
  auto list = a_.ListForVideo("vid1");
  EXPECT_TRUE(!list.ok() || list->empty());
  EXPECT_FALSE(Exists(".jobs/vid1.ladder"));
  EXPECT_FALSE(Exists(".jobs/cancelled/vid1"));
  EXPECT_TRUE(Exists(".jobs/vid10.ladder"));
  EXPECT_EQ(MustClaim(a_).job.id, "vid10.ladder");
  EXPECT_EQ(b_.Forget("../x").code(), errc::bad_output);
}

TEST(RendezvousTest, SingleNodeOwnsEverything) {
  RendezvousOwnership solo("node-a");
  EXPECT_TRUE(solo.ShouldClaim("vid1.ladder"));
  solo.SetMembers({});
  EXPECT_TRUE(solo.ShouldClaim("vid1.ladder"));
}

TEST(RendezvousTest, EachJobHasOneOwnerAndOnlyTheDeadNodesJobsMove) {
  std::vector<std::string> nodes = {"node-a", "node-b", "node-c"};
  std::vector<std::unique_ptr<RendezvousOwnership>> own;
  for (const auto& n : nodes) {
    own.push_back(std::make_unique<RendezvousOwnership>(n));
    own.back()->SetMembers(nodes);
  }
  std::map<std::string, int> per_node;
  std::map<std::string, std::string> before;
  for (int i = 0; i < 300; ++i) {
    std::string job = "v" + std::to_string(i) + ".ladder";
    int owners = 0;
    for (size_t n = 0; n < nodes.size(); ++n) {
      if (own[n]->ShouldClaim(job)) {
        ++owners;
        before[job] = nodes[n];
        ++per_node[nodes[n]];
      }
    }
    EXPECT_EQ(owners, 1) << job;
  }
  for (const auto& n : nodes) EXPECT_GT(per_node[n], 60) << n;  // roughly a third each
  // node-c dies.
  own[0]->SetMembers({"node-a", "node-b"});
  own[1]->SetMembers({"node-a", "node-b"});
  for (const auto& [job, owner] : before) {
    std::string now = own[0]->OwnerOf(job);
    EXPECT_EQ(now, own[1]->OwnerOf(job));
    if (owner != "node-c") {
      EXPECT_EQ(now, owner) << job;
    }
  }
}

TEST(RendezvousTest, QueuesClaimOnlyTheirShare) {
  ManualClock clock;
  auto store = storage::NewMemStore(&clock);
  RendezvousOwnership oa("node-a"), ob("node-b");
  oa.SetMembers({"node-a", "node-b"});
  ob.SetMembers({"node-a", "node-b"});
  JobQueue qa(*store, clock, oa, Options("node-a")), qb(*store, clock, ob, Options("node-b"));
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(qa.Enqueue(JobSpec{"v" + std::to_string(i), "probe"}).ok());
  int a = 0, b = 0;
  while (true) {
    auto c = qa.TryClaim();
    ASSERT_TRUE(c.ok());
    if (!c->has_value()) break;
    EXPECT_EQ(oa.OwnerOf((*c)->job.id), "node-a");
    ++a;
  }
  while (true) {
    auto c = qb.TryClaim();
    ASSERT_TRUE(c.ok());
    if (!c->has_value()) break;
    ++b;
  }
  EXPECT_EQ(a + b, 20);
  EXPECT_GT(a, 0);
  EXPECT_GT(b, 0);
}

}  // namespace
}  // namespace hub::media
