#include "upload/upload.h"

#include <gtest/gtest.h>

#include "core/ids.h"
#include "upload/checksum.h"

namespace hub::upload {
namespace {

std::string Bytes(size_t n, uint32_t seed = 1) {
  std::string s(n, '\0');
  uint32_t x = seed;
  for (auto& c : s) {
    x = x * 1664525u + 1013904223u;
    c = static_cast<char>(x >> 24);
  }
  return s;
}

std::string ReadOriginal(storage::Store& store, const std::string& id) {
  auto r = store.ReadAll(id + "/original", 1 << 30);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  return r.ok() ? *r : "";
}

class UploadsTest : public ::testing::Test {
 protected:
  UploadsTest() : clock_(SystemClock().NowUnixNanos()), store_(storage::NewMemStore()) {}
  Uploads MakeUploads(storage::Store* store = nullptr, std::string node = "n1") {
    UploadOptions o;
    o.node_id = node;
    o.max_size_bytes = 64 << 20;
    o.expiry_ms = 3600'000;
    return Uploads(store ? *store : *store_, clock_, o);
  }
  std::string NewUploadId() { return NewId(clock_.NowUnixMillis()); }

  ManualClock clock_;
  std::unique_ptr<storage::Store> store_;
};

Result<UploadStatus> Send(Uploads& u, const std::string& id, uint64_t offset, std::string_view data,
                          std::optional<ChecksumSpec> sum = std::nullopt) {
  auto c = u.BeginChunk(id, offset, std::move(sum), data.size());
  if (!c) return c.error();
  HUB_TRY((*c)->Write(data));
  return (*c)->Commit();
}

TEST_F(UploadsTest, OneChunkCompletesAndOriginalHoldsTheBytes) {
  auto u = MakeUploads();
  std::string id = NewUploadId();
  std::string data = Bytes(300'000);
  auto s = u.Create(id, data.size(), {{"filename", "clip.mp4"}});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->offset, 0u);
  EXPECT_FALSE(s->complete);
  EXPECT_EQ(s->metadata.at("filename"), "clip.mp4");
  auto done = Send(u, id, 0, data);
  ASSERT_TRUE(done.ok()) << done.error().message;
  EXPECT_TRUE(done->complete);
  EXPECT_EQ(ReadOriginal(*store_, id), data);
  EXPECT_FALSE(store_->Stat(id + "/upload/parts").ok()) << "the parts' bytes are removed once complete";
}

TEST_F(UploadsTest, SecondProcessContinuesWhatTheFirstStarted) {
  auto first = MakeUploads();
  auto second = MakeUploads();  // same store, separate caches: another process
  std::string id = NewUploadId();
  std::string data = Bytes(1'000'000, 7);
  ASSERT_TRUE(first.Create(id, data.size(), {}).ok());
  ASSERT_TRUE(Send(first, id, 0, std::string_view(data).substr(0, 400'000)).ok());
  auto s = second.Status(id);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->offset, 400'000u);
  ASSERT_TRUE(Send(second, id, 400'000, std::string_view(data).substr(400'000, 100'000)).ok());
  ASSERT_TRUE(first.Status(id).ok());
  EXPECT_EQ(first.Status(id)->offset, 500'000u) << "the first process sees the second's chunk";
  auto done = Send(first, id, 500'000, std::string_view(data).substr(500'000));
  ASSERT_TRUE(done.ok()) << done.error().message;
  EXPECT_TRUE(done->complete);
  EXPECT_EQ(ReadOriginal(*store_, id), data);
  EXPECT_TRUE(second.Status(id)->complete);
}

TEST_F(UploadsTest, RacingRequestsAtTheSameOffsetNeverCorrupt) {
  auto a = MakeUploads(nullptr, "node-a");
  auto b = MakeUploads(nullptr, "node-b");
  std::string id = NewUploadId();
  std::string data = Bytes(200'000, 3);
  ASSERT_TRUE(a.Create(id, data.size(), {}).ok());
  auto ca = a.BeginChunk(id, 0, std::nullopt, std::nullopt);
  ASSERT_TRUE(ca.ok());
  // While A is in flight, B is told at once that it would lose.
  auto cb = b.BeginChunk(id, 0, std::nullopt, std::nullopt);
  ASSERT_FALSE(cb.ok());
  EXPECT_EQ(cb.code(), errc::busy);
  // A's marker goes stale (A hangs): B may start, and both write.
  clock_.Advance(std::chrono::seconds(31));
  cb = b.BeginChunk(id, 0, std::nullopt, std::nullopt);
  ASSERT_TRUE(cb.ok()) << cb.error().message;
  std::string other = Bytes(200'000, 99);
  ASSERT_TRUE((*cb)->Write(other).ok());
  ASSERT_TRUE((*ca)->Write(data).ok());
  // Exactly one commit wins; the other learns it lost, nothing is mixed.
  auto rb = (*cb)->Commit();
  auto ra = (*ca)->Commit();
  ASSERT_TRUE(rb.ok());
  ASSERT_FALSE(ra.ok());
  EXPECT_EQ(ra.code(), errc::offset_mismatch);
  EXPECT_EQ(ReadOriginal(*store_, id), other);
}

TEST_F(UploadsTest, OffsetMismatchIsRefused) {
  auto u = MakeUploads();
  std::string id = NewUploadId();
  ASSERT_TRUE(u.Create(id, 100, {}).ok());
  ASSERT_TRUE(Send(u, id, 0, Bytes(10)).ok());
  for (uint64_t bad : {0ull, 5ull, 11ull, 100ull}) {
    auto c = u.BeginChunk(id, bad, std::nullopt, std::nullopt);
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.code(), errc::offset_mismatch) << bad;
  }
}

TEST_F(UploadsTest, ChecksumMismatchDiscardsTheChunk) {
  auto u = MakeUploads();
  std::string id = NewUploadId();
  std::string data = Bytes(5000);
  ASSERT_TRUE(u.Create(id, data.size(), {}).ok());
  for (auto alg : {ChecksumAlgorithm::kSha1, ChecksumAlgorithm::kMd5, ChecksumAlgorithm::kSha256}) {
    Digest wrong(alg);
    wrong.Update(std::string_view("something else"));
    auto r = Send(u, id, 0, data, ChecksumSpec{alg, wrong.Final()});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.code(), errc::checksum_mismatch);
    EXPECT_EQ(u.Status(id)->offset, 0u);
  }
  Digest right(ChecksumAlgorithm::kSha256);
  right.Update(data);
  auto r = Send(u, id, 0, data, ChecksumSpec{ChecksumAlgorithm::kSha256, right.Final()});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->complete);
  EXPECT_EQ(ReadOriginal(*store_, id), data);
}

TEST_F(UploadsTest, MoreBytesThanDeclaredAreRefused) {
  auto u = MakeUploads();
  std::string id = NewUploadId();
  ASSERT_TRUE(u.Create(id, 10, {}).ok());
  auto c = u.BeginChunk(id, 0, std::nullopt, 11);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.code(), errc::length_exceeded);
  c = u.BeginChunk(id, 0, std::nullopt, std::nullopt);  // chunked: learnt while writing
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE((*c)->Write(Bytes(6)).ok());
  auto w = (*c)->Write(Bytes(5));
  EXPECT_EQ(w.code(), errc::length_exceeded);
}

TEST_F(UploadsTest, TooLargeAtCreation) {
  auto u = MakeUploads();
  auto r = u.Create(NewUploadId(), (64 << 20) + 1, {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), errc::too_large);
  EXPECT_NE(r.error().message.find("MAX_UPLOAD_SIZE_MB"), std::string::npos);
}

TEST_F(UploadsTest, InterruptedRequestKeepsWhatArrivedUnlessChecksummed) {
  auto u = MakeUploads();
  std::string id = NewUploadId();
  std::string data = Bytes(1000);
  ASSERT_TRUE(u.Create(id, data.size(), {}).ok());
  auto c = u.BeginChunk(id, 0, std::nullopt, std::nullopt);
  ASSERT_TRUE((*c)->Write(std::string_view(data).substr(0, 300)).ok());
  ASSERT_TRUE((*c)->CommitReceived().ok());
  EXPECT_EQ(u.Status(id)->offset, 300u);
  Digest d(ChecksumAlgorithm::kSha1);
  d.Update(std::string_view(data).substr(300));
  c = u.BeginChunk(id, 300, ChecksumSpec{ChecksumAlgorithm::kSha1, d.Final()}, std::nullopt);
  ASSERT_TRUE((*c)->Write(std::string_view(data).substr(300, 100)).ok());
  EXPECT_FALSE((*c)->CommitReceived().ok());
  EXPECT_EQ(u.Status(id)->offset, 300u);
  // A dropped chunk (destroyed without commit) leaves no trace either.
  c = u.BeginChunk(id, 300, std::nullopt, std::nullopt);
  ASSERT_TRUE((*c)->Write(std::string_view(data).substr(300, 100)).ok());
  c->reset();
  ASSERT_TRUE(Send(u, id, 300, std::string_view(data).substr(300)).ok());
  EXPECT_EQ(ReadOriginal(*store_, id), data);
}

TEST_F(UploadsTest, ExpiresAfterInactivityAndTerminates) {
  auto u = MakeUploads();
  std::string id = NewUploadId();
  ASSERT_TRUE(u.Create(id, 100, {}).ok());
  clock_.Advance(std::chrono::minutes(50));
  ASSERT_TRUE(Send(u, id, 0, Bytes(10)).ok());
  clock_.Advance(std::chrono::minutes(50));
  EXPECT_TRUE(u.Status(id).ok()) << "activity pushed the expiry back";
  clock_.Advance(std::chrono::minutes(11));
  EXPECT_EQ(u.Status(id).code(), errc::expired);
  auto unfinished = u.ListUnfinished();
  ASSERT_TRUE(unfinished.ok());
  EXPECT_EQ(*unfinished, std::vector<std::string>{id});
  ASSERT_TRUE(u.Terminate(id).ok());
  EXPECT_EQ(u.Status(id).code(), errc::not_found);
  EXPECT_EQ(u.Terminate(id).code(), errc::not_found);
}

TEST_F(UploadsTest, ZeroLengthUploadIsCompleteAtOnce) {
  auto u = MakeUploads();
  std::string id = NewUploadId();
  auto s = u.Create(id, 0, {});
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->complete);
  EXPECT_EQ(ReadOriginal(*store_, id), "");
}

TEST_F(UploadsTest, PathTricksNeverReachTheStore) {
  auto u = MakeUploads();
  for (const std::string& bad : std::vector<std::string>{"..", "../x", "a/b", std::string("a\0b", 3), ""}) {
    EXPECT_EQ(u.Status(bad).code(), errc::not_found);
    EXPECT_FALSE(u.Create(bad, 1, {}).ok());
  }
}

// Fault injection by countdown (STYLE.md #10): fail the 1st, 2nd, ... storage
// write of a resume-and-finish sequence; after every failure nothing that was
// committed is lost, and retrying finishes with the exact bytes.
TEST_F(UploadsTest, EveryStorageFailureLeavesTheUploadResumable) {
  std::string data = Bytes(3'000'000, 11);
  for (int k = 0;; ++k) {
    auto base = storage::NewMemStore();
    auto faulty = storage::NewFaultyStore(base.get());
    auto u = MakeUploads(faulty.get());
    std::string id = NewUploadId();
    ASSERT_TRUE(u.Create(id, data.size(), {}).ok());
    ASSERT_TRUE(Send(u, id, 0, std::string_view(data).substr(0, 1'000'000)).ok());
    faulty->FailAfter(k, storage::errc::no_space);
    auto s = u.Status(id);
    ASSERT_TRUE(s.ok());
    auto r = Send(u, id, s->offset, std::string_view(data).substr(s->offset));
    if (r.ok()) {
      EXPECT_EQ(ReadOriginal(*base, id), data);
      EXPECT_GT(k, 3) << "the sequence performs several writes";
      break;
    }
    EXPECT_TRUE(r.code() == errc::no_space) << k << ": " << r.error().message;
    faulty->Reset();
    auto fresh = MakeUploads(faulty.get());  // a restarted process
    auto after = fresh.Status(id);
    ASSERT_TRUE(after.ok()) << k;
    EXPECT_GE(after->offset, 1'000'000u) << "committed bytes survive failure " << k;
    if (!after->complete) {
      auto fin = fresh.FinishIfComplete(id);
      ASSERT_TRUE(fin.ok());
      if (!*fin) {
        auto again = Send(fresh, id, after->offset, std::string_view(data).substr(after->offset));
        ASSERT_TRUE(again.ok()) << k << ": " << again.error().message;
      }
    }
    EXPECT_EQ(ReadOriginal(*base, id), data) << k;
    ASSERT_LT(k, 50);
  }
}

}  // namespace
}  // namespace hub::upload
