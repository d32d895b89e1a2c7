#include "catalog/video.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "catalog/detail/stored_json.h"
#include "core/ids.h"

namespace hub::catalog {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr int64_t kStartNanos = 1'700'000'000'000'000'000;  // 2023-11-14T22:13:20Z
constexpr int64_t kStartMs = kStartNanos / 1'000'000;

template <class T>
std::string Describe(const Result<T>& r) {
  return r.ok() ? "ok" : r.error().code.message() + ": " + r.error().message;
}

#define ASSERT_OK(expr)                                       \
  do {                                                        \
    const auto& assert_ok_r_ = (expr);                        \
    ASSERT_TRUE(assert_ok_r_.ok()) << Describe(assert_ok_r_); \
  } while (0)

NewVideo MakeNew(const std::string& id, const std::string& title = "A title") {
  NewVideo nv;
  nv.id = id;
  nv.title = title;
  nv.description = "about " + id;
  nv.original_name = "clip.mp4";
  nv.content_type = "video/mp4";
  nv.size = 1000;
  return nv;
}

std::string Overlay(const std::string& field, const json& value, int64_t t,
                    const std::string& node) {
  return json{{field, {{"v", value}, {"t", t}, {"n", node}}}}.dump();
}

class RepositoryTest : public ::testing::Test {
 protected:
  Video MustCreate(const std::string& id, const std::string& title = "A title") {
    auto v = repo_.Create(MakeNew(id, title));
    EXPECT_TRUE(v.ok()) << Describe(v);
    return v.ok() ? *v : Video{};
  }

  ManualClock clock_{kStartNanos};
  std::unique_ptr<storage::Store> store_ = storage::NewMemStore(&clock_);
  VideoRepository repo_{*store_, "node-a", clock_};
};

TEST_F(RepositoryTest, CreateGetUpdateDeleteRoundTrip) {
  Video created = MustCreate("vid1", "First");
  EXPECT_EQ(created.title, "First");
  EXPECT_EQ(created.created_at_ms, kStartMs);
  EXPECT_EQ(created.updated_at_ms, kStartMs);
  EXPECT_EQ(created.status, VideoStatus::kUploading);

  auto got = repo_.Get("vid1");
  ASSERT_OK(got);
  EXPECT_EQ(got->title, "First");
  EXPECT_EQ(got->description, "about vid1");
  EXPECT_EQ(got->original_name, "clip.mp4");
  EXPECT_EQ(got->content_type, "video/mp4");
  EXPECT_EQ(got->size, 1000u);
  EXPECT_EQ(got->created_at_ms, kStartMs);
  EXPECT_FALSE(got->deleted);

  EXPECT_EQ(repo_.Create(MakeNew("vid1")).code(), errc::already_exists);

  clock_.Advance(1s);
  VideoPatch patch;
  patch.title = "Second";
  patch.description = "new words";
  patch.status = VideoStatus::kReady;
  patch.size = 2000;
  patch.media = json{{"duration", 12.5}};
  auto updated = repo_.Update("vid1", patch);
  ASSERT_OK(updated);
  EXPECT_EQ(updated->title, "Second");
  EXPECT_EQ(updated->updated_at_ms, kStartMs + 1000);

  got = repo_.Get("vid1");
  ASSERT_OK(got);
  EXPECT_EQ(got->title, "Second");
  EXPECT_EQ(got->description, "new words");
  EXPECT_EQ(got->status, VideoStatus::kReady);
  EXPECT_EQ(got->size, 2000u);
  EXPECT_EQ(got->media, (json{{"duration", 12.5}}));
  EXPECT_EQ(got->created_at_ms, kStartMs);
  EXPECT_EQ(got->updated_at_ms, kStartMs + 1000);

  // An empty patch changes nothing and writes nothing.
  auto same = repo_.Update("vid1", VideoPatch{});
  ASSERT_OK(same);
  EXPECT_EQ(same->updated_at_ms, kStartMs + 1000);

  clock_.Advance(1s);
  ASSERT_OK(repo_.MarkDeleted("vid1"));
  EXPECT_EQ(repo_.Get("vid1").code(), errc::not_found);
  auto deleted = repo_.GetIncludingDeleted("vid1");
  ASSERT_OK(deleted);
  EXPECT_TRUE(deleted->deleted);
  EXPECT_EQ(deleted->deleted_at_ms, kStartMs + 2000);
  EXPECT_EQ(deleted->title, "Second");
  EXPECT_EQ(repo_.Update("vid1", patch).code(), errc::not_found);
  ASSERT_OK(repo_.MarkDeleted("vid1"));  // idempotent
  EXPECT_EQ(repo_.MarkDeleted("missing").code(), errc::not_found);
}

TEST_F(RepositoryTest, MissingAndMalformedIdsAreNotFound) {
  ASSERT_OK(store_->WriteAtomic("streams/video.json", "{\"id\":\"streams\",\"created_at_ms\":1}"));
  for (std::string id : {"missing", "", "../etc", "a/b", ".uploads", "streams"}) {
    EXPECT_EQ(repo_.Get(id).code(), errc::not_found) << id;
    EXPECT_EQ(repo_.GetIncludingDeleted(id).code(), errc::not_found) << id;
    EXPECT_EQ(repo_.Update(id, VideoPatch{.title = "x"}).code(), errc::not_found) << id;
    EXPECT_EQ(repo_.MarkDeleted(id).code(), errc::not_found) << id;
    EXPECT_EQ(repo_.Fingerprint(id).code(), errc::not_found) << id;
  }
}

TEST_F(RepositoryTest, PerFieldLastWriterWinsAcrossNodes) {
  VideoRepository other(*store_, "node-b", clock_);
  MustCreate("vid1", "Original");

  clock_.Advance(1s);
  ASSERT_OK(repo_.Update("vid1", VideoPatch{.title = "title from a"}));
  clock_.Advance(1s);
  ASSERT_OK(other.Update("vid1", VideoPatch{.description = "description from b"}));
  clock_.Advance(1s);
  ASSERT_OK(other.Update("vid1", VideoPatch{.title = "title from b"}));
  clock_.Advance(1s);
  ASSERT_OK(repo_.Update("vid1", VideoPatch{.status = VideoStatus::kProcessing}));

  for (VideoRepository* r : {&repo_, &other}) {
    auto v = r->Get("vid1");
    ASSERT_OK(v);
    EXPECT_EQ(v->title, "title from b");
    EXPECT_EQ(v->description, "description from b");
    EXPECT_EQ(v->status, VideoStatus::kProcessing);
    EXPECT_EQ(v->updated_at_ms, kStartMs + 4000);
  }
}

TEST_F(RepositoryTest, LaterEditWinsWhenItsNodeClockIsBehind) {
  ManualClock behind(kStartNanos - 3'600'000'000'000);  // an hour slow
  VideoRepository slow(*store_, "node-b", behind);
  MustCreate("vid1");

  clock_.Advance(10s);
  ASSERT_OK(repo_.Update("vid1", VideoPatch{.title = "edit 1 on a"}));
  auto v = slow.Update("vid1", VideoPatch{.title = "edit 2 on b"});
  ASSERT_OK(v);
  EXPECT_EQ(v->title, "edit 2 on b");
  EXPECT_EQ(v->updated_at_ms, kStartMs + 10'001);
  ASSERT_OK(repo_.Update("vid1", VideoPatch{.title = "edit 3 on a"}));
  auto w = slow.Update("vid1", VideoPatch{.title = "edit 4 on b"});
  ASSERT_OK(w);
  EXPECT_EQ(w->updated_at_ms, kStartMs + 10'003);
  for (VideoRepository* r : {&repo_, &slow}) {
    auto got = r->Get("vid1");
    ASSERT_OK(got);
    EXPECT_EQ(got->title, "edit 4 on b");
  }
  // The creation time counts as seen: a slow node's first edit still wins
  // over the creation record.
  ASSERT_OK(repo_.Create(MakeNew("vid2", "created on a")));
  auto x = slow.Update("vid2", VideoPatch{.title = "renamed on b"});
  ASSERT_OK(x);
  EXPECT_EQ(repo_.Get("vid2")->title, "renamed on b");
}

TEST_F(RepositoryTest, EqualTimestampsBreakTiesByNodeId) {
  MustCreate("vid1", "from creation");
  // Same timestamp as the creation record: any node beats node "".
  ASSERT_OK(store_->WriteAtomic("vid1/state/a.json", Overlay("title", "from a", kStartMs, "a")));
  EXPECT_EQ(repo_.Get("vid1")->title, "from a");
  ASSERT_OK(store_->WriteAtomic("vid1/state/b.json", Overlay("title", "from b", kStartMs, "b")));
  EXPECT_EQ(repo_.Get("vid1")->title, "from b");
  ASSERT_OK(
      store_->WriteAtomic("vid1/state/a.json", Overlay("title", "a again", kStartMs + 1, "a")));
  EXPECT_EQ(repo_.Get("vid1")->title, "a again");
}

TEST_F(RepositoryTest, CorruptOverlayIsSkipped) {
  MustCreate("vid1", "Original");
  clock_.Advance(1s);
  ASSERT_OK(repo_.Update("vid1", VideoPatch{.title = "Good title"}));
  const int64_t later = kStartMs + 1'000'000;
  ASSERT_OK(store_->WriteAtomic("vid1/state/garbage.json", "{not json"));
  ASSERT_OK(store_->WriteAtomic("vid1/state/array.json", "[1,2,3]"));
  ASSERT_OK(store_->WriteAtomic("vid1/state/empty.json", ""));
  // Entries with the wrong types or no timestamp are skipped field by field.
  ASSERT_OK(store_->WriteAtomic(
      "vid1/state/typo.json", json{{"title", {{"v", 42}, {"t", later}, {"n", "typo"}}},
                                   {"status", {{"v", "exploded"}, {"t", later}, {"n", "typo"}}},
                                   {"size", {{"v", -5}, {"t", later}, {"n", "typo"}}},
                                   {"media", {{"v", "not an object"}, {"t", later}, {"n", "typo"}}},
                                   {"description", {{"v", "no timestamp"}}},
                                   {"error", {{"v", "valid"}, {"t", later}, {"n", "typo"}}}}
                                  .dump()));
  ASSERT_OK(store_->WriteAtomic("vid1/state/huge.json",
                                Overlay("title", std::string(300'000, 'x'), later, "huge")));
  ASSERT_OK(store_->WriteAtomic("vid1/state/notes.txt", "not an overlay"));

  auto v = repo_.Get("vid1");
  ASSERT_OK(v);
  EXPECT_EQ(v->title, "Good title");
  EXPECT_EQ(v->description, "about vid1");
  EXPECT_EQ(v->status, VideoStatus::kUploading);
  EXPECT_EQ(v->size, 1000u);
  EXPECT_EQ(v->media, json::object());
  EXPECT_EQ(v->error, "valid");

  // A corrupt overlay of this very node is replaced by the next update.
  ASSERT_OK(store_->WriteAtomic("vid1/state/node-a.json", "\x01\x02"));
  ASSERT_OK(repo_.Update("vid1", VideoPatch{.description = "fresh"}));
  v = repo_.Get("vid1");
  ASSERT_OK(v);
  EXPECT_EQ(v->description, "fresh");
}

TEST_F(RepositoryTest, UnreadableCreationRecordIsCorrupt) {
  ASSERT_OK(store_->WriteAtomic("half/video.json", "{\"id\":\"half\",\"crea"));
  EXPECT_EQ(repo_.Get("half").code(), errc::corrupt);
  ASSERT_OK(
      store_->WriteAtomic("other/video.json", json{{"id", "half"}, {"created_at_ms", 1}}.dump()));
  EXPECT_EQ(repo_.Get("other").code(), errc::corrupt);  // the id must match its directory
}

TEST_F(RepositoryTest, ValidationErrors) {
  MustCreate("vid1");
  auto update = [&](VideoPatch p) { return repo_.Update("vid1", p); };
  auto expect_invalid = [&](VideoPatch p, const std::string& mentions) {
    auto r = update(std::move(p));
    ASSERT_EQ(r.code(), errc::invalid_argument) << Describe(r);
    EXPECT_NE(r.error().message.find(mentions), std::string::npos) << r.error().message;
  };
  expect_invalid({.title = ""}, "title must not be empty");
  expect_invalid({.title = " \t\n "}, "title must not be empty");
  expect_invalid({.title = std::string(kMaxTitleBytes + 1, 'x')}, "limit is 300 bytes");
  expect_invalid({.title = "bad \xff byte"}, "not valid UTF-8");
  expect_invalid({.title = "overlong \xC0\x80"}, "not valid UTF-8");
  expect_invalid({.title = "surrogate \xED\xA0\x80"}, "not valid UTF-8");
  expect_invalid({.title = "cut \xE2\x82"}, "not valid UTF-8");
  expect_invalid({.title = "two\nlines"}, "control characters");
  expect_invalid({.title = "c1 \xC2\x85"}, "control characters");
  expect_invalid({.description = std::string(kMaxDescriptionBytes + 1, 'x')}, "description is");
  expect_invalid({.description = "bell\a"}, "U+0007");
  expect_invalid({.description = "\xfe"}, "not valid UTF-8");
  expect_invalid({.media = json::array()}, "media");
  // Nothing was written by the refused updates.
  EXPECT_EQ(repo_.Get("vid1")->title, "A title");

  std::string euros;
  for (size_t i = 0; i < kMaxTitleBytes / 3; ++i) euros += "\xE2\x82\xAC";  // 300 bytes
  ASSERT_OK(update({.title = euros}));
  ASSERT_OK(update({.title = "  Trimmed\t "}));
  EXPECT_EQ(repo_.Get("vid1")->title, "Trimmed");
  ASSERT_OK(update({.description = "line one\r\n\tline two\n"}));
  EXPECT_EQ(repo_.Get("vid1")->description, "line one\n\tline two\n");
  ASSERT_OK(update({.description = std::string(kMaxDescriptionBytes, 'x')}));

  NewVideo nv = MakeNew("bad id!");
  EXPECT_EQ(repo_.Create(nv).code(), errc::invalid_argument);
  nv = MakeNew("streams");
  EXPECT_EQ(repo_.Create(nv).code(), errc::invalid_argument);
  nv = MakeNew("vid2", std::string(kMaxTitleBytes + 1, 'x'));
  EXPECT_EQ(repo_.Create(nv).code(), errc::invalid_argument);
  nv = MakeNew("vid2");
  nv.original_name = "name\xff.mp4";
  EXPECT_EQ(repo_.Create(nv).code(), errc::invalid_argument);
  nv = MakeNew("vid2");
  nv.description = "\x1b[31m";
  EXPECT_EQ(repo_.Create(nv).code(), errc::invalid_argument);
  EXPECT_EQ(repo_.Get("vid2").code(), errc::not_found);
}

TEST_F(RepositoryTest, CreateWithoutTitleUsesTheFileName) {
  NewVideo nv = MakeNew("vid1", "   ");
  nv.original_name = "C:\\fakepath\\Holiday 2024.final.mp4";
  auto v = repo_.Create(nv);
  ASSERT_OK(v);
  EXPECT_EQ(v->title, "Holiday 2024.final");
  nv = MakeNew("vid2", "");
  nv.original_name = "";
  v = repo_.Create(nv);
  ASSERT_OK(v);
  EXPECT_EQ(v->title, "Untitled video");
  EXPECT_EQ(repo_.Get("vid2")->title, "Untitled video");
}

TEST_F(RepositoryTest, ErrorTextIsSanitisedNotRefused) {
  MustCreate("vid1");
  auto v = repo_.Update("vid1", VideoPatch{.error = "bad\x01 \xff thing\r\n"});
  ASSERT_OK(v);
  EXPECT_EQ(v->error, "bad \xEF\xBF\xBD thing");
  v = repo_.Update("vid1", VideoPatch{.error = std::string(5000, 'e')});
  ASSERT_OK(v);
  EXPECT_EQ(v->error.size(), 2000u);
}

TEST_F(RepositoryTest, TombstoneHidesAndReclaimRespectsGrace) {
  MustCreate("vid1");
  MustCreate("vid2");
  ASSERT_OK(store_->WriteAtomic(VideoRepository::OriginalPath("vid1"), "bytes"));
  constexpr int64_t kGraceMs = 3'600'000;

  auto not_deleted = repo_.ReclaimIfExpired("vid2", 0);
  ASSERT_OK(not_deleted);
  EXPECT_FALSE(*not_deleted);

  ASSERT_OK(repo_.MarkDeleted("vid1"));
  EXPECT_EQ(repo_.Get("vid1").code(), errc::not_found);
  auto r = repo_.ReclaimIfExpired("vid1", kGraceMs);
  ASSERT_OK(r);
  EXPECT_FALSE(*r);
  clock_.Advance(59min);
  r = repo_.ReclaimIfExpired("vid1", kGraceMs);
  ASSERT_OK(r);
  EXPECT_FALSE(*r);
  ASSERT_OK(store_->Stat(VideoRepository::OriginalPath("vid1")));

  clock_.Advance(1min);
  r = repo_.ReclaimIfExpired("vid1", kGraceMs);
  ASSERT_OK(r);
  EXPECT_TRUE(*r);
  EXPECT_EQ(store_->Stat("vid1").code(), storage::errc::not_found);
  EXPECT_EQ(repo_.GetIncludingDeleted("vid1").code(), errc::not_found);
  auto ids = repo_.ListIds();
  ASSERT_OK(ids);
  EXPECT_EQ(*ids, std::vector<std::string>{"vid2"});
  r = repo_.ReclaimIfExpired("vid1", kGraceMs);  // already gone
  ASSERT_OK(r);
  EXPECT_FALSE(*r);
  ASSERT_OK(repo_.Get("vid2"));
}

TEST_F(RepositoryTest, TombstoneBeingWrittenCountsWithItsMtime) {
  MustCreate("vid1");
  clock_.Advance(5s);
  // Another node's exclusive create has made the file but not written it yet.
  ASSERT_OK(store_->WriteAtomic("vid1/deleted", ""));
  EXPECT_EQ(repo_.Get("vid1").code(), errc::not_found);
  auto v = repo_.GetIncludingDeleted("vid1");
  ASSERT_OK(v);
  EXPECT_TRUE(v->deleted);
  EXPECT_EQ(v->deleted_at_ms, kStartMs + 5000);
}

TEST_F(RepositoryTest, ListIdsIgnoresJunk) {
  MustCreate("b2");
  MustCreate("a1");
  ASSERT_OK(repo_.MarkDeleted("b2"));  // deleted ones are listed
  ASSERT_OK(store_->WriteAtomic("streams/video.json", "{}"));
  ASSERT_OK(store_->WriteAtomic("streams/a1/index.m3u8", "#EXTM3U"));
  ASSERT_OK(store_->WriteAtomic(".uploads/x/video.json", "{}"));
  ASSERT_OK(store_->WriteAtomic("no-record/original", "bytes"));
  ASSERT_OK(store_->WriteAtomic("plainfile", "bytes"));
  ASSERT_OK(store_->WriteAtomic("notes.txt", "bytes"));
  ASSERT_OK(store_->WriteAtomic("dir.dot/video.json", "{}"));
  ASSERT_OK(store_->WriteAtomic("recdir/video.json/inner", "{}"));
  auto ids = repo_.ListIds();
  ASSERT_OK(ids);
  EXPECT_EQ(*ids, (std::vector<std::string>{"a1", "b2"}));
}

TEST_F(RepositoryTest, ListIdsOfAnEmptyStore) {
  auto ids = repo_.ListIds();
  ASSERT_OK(ids);
  EXPECT_TRUE(ids->empty());
}

TEST_F(RepositoryTest, FingerprintFollowsEveryFile) {
  MustCreate("vid1");
  std::set<std::string> seen;
  auto fp = [&] {
    auto f = repo_.Fingerprint("vid1");
    EXPECT_TRUE(f.ok()) << Describe(f);
    return f.ok() ? *f : "";
  };
  const std::string first = fp();
  EXPECT_EQ(fp(), first);  // stable while nothing changes
  seen.insert(first);
  clock_.Advance(1s);
  ASSERT_OK(repo_.Update("vid1", VideoPatch{.title = "t2"}));
  EXPECT_TRUE(seen.insert(fp()).second);
  clock_.Advance(1s);
  VideoRepository other(*store_, "node-b", clock_);
  ASSERT_OK(other.Update("vid1", VideoPatch{.title = "t3"}));
  EXPECT_TRUE(seen.insert(fp()).second);
  clock_.Advance(1s);
  ASSERT_OK(store_->WriteAtomic(VideoRepository::OriginalPath("vid1"), "bytes"));
  EXPECT_TRUE(seen.insert(fp()).second);
  clock_.Advance(1s);
  ASSERT_OK(repo_.MarkDeleted("vid1"));
  EXPECT_TRUE(seen.insert(fp()).second);
  EXPECT_EQ(repo_.Fingerprint("nope").code(), errc::not_found);
}

// Passes every call through, yielding the thread after each read so that
// threads interleave inside read-modify-write sequences.
class YieldingStore final : public storage::Store {
 public:
  explicit YieldingStore(storage::Store& inner) : inner_(inner) {}
  Result<std::unique_ptr<storage::ReadableFile>> OpenRead(std::string_view p) override {
    return inner_.OpenRead(p);
  }
  Result<std::string> ReadAll(std::string_view p, size_t max) override {
    auto r = inner_.ReadAll(p, max);
    for (int i = 0; i < 50; ++i) std::this_thread::yield();
    return r;
  }
  Result<void> WriteAtomic(std::string_view p, std::string_view d) override {
    return inner_.WriteAtomic(p, d);
  }
  Result<void> CreateExclusive(std::string_view p, std::string_view d) override {
    return inner_.CreateExclusive(p, d);
  }
  Result<std::unique_ptr<storage::WritableFile>> OpenWrite(std::string_view p, bool c) override {
    return inner_.OpenWrite(p, c);
  }
  Result<storage::FileInfo> Stat(std::string_view p) override { return inner_.Stat(p); }
  Result<std::vector<std::string>> List(std::string_view d) override { return inner_.List(d); }
  Result<void> Rename(std::string_view f, std::string_view t) override {
    return inner_.Rename(f, t);
  }
  Result<void> Remove(std::string_view p) override { return inner_.Remove(p); }
  Result<void> RemoveAll(std::string_view p) override { return inner_.RemoveAll(p); }
  Result<void> Touch(std::string_view p) override { return inner_.Touch(p); }
  Result<storage::SpaceInfo> Space() override { return inner_.Space(); }
  std::string Describe() const override { return "yielding:" + inner_.Describe(); }

 private:
  storage::Store& inner_;
};

TEST_F(RepositoryTest, ConcurrentUpdatesOnOneNodeLoseNothing) {
  YieldingStore yielding(*store_);
  VideoRepository repo(yielding, "node-a", clock_);
  ASSERT_OK(repo.Create(MakeNew("vid1")));
  constexpr int kRounds = 40;
  std::thread titles([&] {
    for (int i = 0; i < kRounds; ++i) {
      EXPECT_TRUE(repo.Update("vid1", VideoPatch{.title = "t" + std::to_string(i)}).ok());
    }
  });
  std::thread descriptions([&] {
    for (int i = 0; i < kRounds; ++i) {
      EXPECT_TRUE(repo.Update("vid1", VideoPatch{.description = "d" + std::to_string(i)}).ok());
    }
  });
  titles.join();
  descriptions.join();
  auto v = repo.Get("vid1");
  ASSERT_OK(v);
  EXPECT_EQ(v->title, "t" + std::to_string(kRounds - 1));
  EXPECT_EQ(v->description, "d" + std::to_string(kRounds - 1));
}

TEST(VideoRepository, RejectsNodeIdsThatCannotNameAFile) {
  ManualClock clock;
  auto store = storage::NewMemStore(&clock);
  for (const std::string& bad :
       std::vector<std::string>{"", ".hidden", "../x", "a/b", std::string(65, 'n'), "sp ace"}) {
    EXPECT_THROW((VideoRepository{*store, bad, clock}), std::invalid_argument) << bad;
  }
  EXPECT_NO_THROW((VideoRepository{*store, "host-1.example.com", clock}));
}

TEST_F(RepositoryTest, ToJsonFieldsAndUrls) {
  Video v = MustCreate("vid1", "Shown");
  json j = ToJson(v);
  EXPECT_EQ(j["id"], "vid1");
  EXPECT_EQ(j["title"], "Shown");
  EXPECT_EQ(j["description"], "about vid1");
  EXPECT_EQ(j["original_name"], "clip.mp4");
  EXPECT_EQ(j["content_type"], "video/mp4");
  EXPECT_EQ(j["size"], 1000);
  EXPECT_EQ(j["status"], "uploading");
  EXPECT_TRUE(j["error"].is_null());
  EXPECT_EQ(j["created_at"], "2023-11-14T22:13:20.000Z");
  EXPECT_EQ(j["updated_at"], "2023-11-14T22:13:20.000Z");
  EXPECT_EQ(j["media"], json::object());
  EXPECT_TRUE(j["original_url"].is_null());
  EXPECT_EQ(j["upload_url"], "/files/vid1");
  EXPECT_TRUE(j["hls_url"].is_null());
  EXPECT_TRUE(j["thumbnail_url"].is_null());
  EXPECT_EQ(j["watch_url"], "/watch/vid1");
  EXPECT_TRUE(j["media_status"].is_null());
  EXPECT_TRUE(j["progress"].is_null());
  EXPECT_TRUE(j["poster_urls"].is_null());
  EXPECT_TRUE(j["sprite_vtt_url"].is_null());
  EXPECT_EQ(j.size(), 20u);

  clock_.Advance(1500ms);
  auto failed = repo_.Update(
      "vid1", VideoPatch{.error = "The file is not a video.", .status = VideoStatus::kFailed});
  ASSERT_OK(failed);
  j = ToJson(*failed);
  EXPECT_EQ(j["status"], "failed");
  EXPECT_EQ(j["error"], "The file is not a video.");
  EXPECT_EQ(j["updated_at"], "2023-11-14T22:13:21.500Z");
  EXPECT_EQ(j["original_url"], "/media/vid1/original");
  EXPECT_TRUE(j["upload_url"].is_null());
}

TEST_F(RepositoryTest, ToJsonExposesTheMediaPipelineState) {
  MustCreate("vid1", "Shown");
  auto v = repo_.Update("vid1", VideoPatch{.status = VideoStatus::kReady,
                                           .media = json{{"status", "processing"}, {"progress", 42}}});
  ASSERT_OK(v);
  json j = ToJson(*v);
  EXPECT_EQ(j["status"], "ready");  // the original plays
  EXPECT_EQ(j["media_status"], "processing");
  EXPECT_EQ(j["progress"], 42);
  EXPECT_TRUE(j["hls_url"].is_null());
  EXPECT_TRUE(j["error"].is_null());

  v = repo_.Update("vid1", VideoPatch{.media = json{{"status", "ready"}, {"progress", 100}, {"hls", true},
                                                    {"thumbs", true}}});
  ASSERT_OK(v);
  j = ToJson(*v);
  EXPECT_EQ(j["media_status"], "ready");
  EXPECT_EQ(j["hls_url"], "/media/vid1/hls/master.m3u8");
  EXPECT_EQ(j["thumbnail_url"], "/media/vid1/thumbs/poster_large.jpg");
  EXPECT_EQ(j["poster_urls"]["small"], "/media/vid1/thumbs/poster_small.jpg");
  EXPECT_EQ(j["sprite_vtt_url"], "/media/vid1/thumbs/sprite.vtt");

  v = repo_.Update("vid1", VideoPatch{.media = json{{"status", "failed"}, {"error", "The file has no video track."}}});
  ASSERT_OK(v);
  j = ToJson(*v);
  EXPECT_EQ(j["media_status"], "failed");
  EXPECT_EQ(j["error"], "The file has no video track.");
}

TEST(VideoStatus, RoundTrips) {
  for (auto s : {VideoStatus::kUploading, VideoStatus::kProcessing, VideoStatus::kReady,
                 VideoStatus::kFailed}) {
    EXPECT_EQ(ParseStatus(ToString(s)), s);
  }
  EXPECT_EQ(ParseStatus("Ready"), std::nullopt);
  EXPECT_EQ(std::error_code(errc::corrupt).category().name(), std::string("catalog"));
}

TEST(StoredJson, RoundTripsEveryField) {
  Video v;
  v.id = "x";
  v.title = "T \xC3\xA9";
  v.description = "d";
  v.original_name = "o.mp4";
  v.content_type = "video/mp4";
  v.size = 1ull << 40;
  v.status = VideoStatus::kFailed;
  v.error = "e";
  v.created_at_ms = 1;
  v.updated_at_ms = 2;
  v.media = json{{"a", 1}};
  v.deleted = true;
  v.deleted_at_ms = 3;
  auto back = detail::FromStoredJson(detail::ToStoredJson(v));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(detail::ToStoredJson(*back), detail::ToStoredJson(v));
  EXPECT_FALSE(detail::FromStoredJson(json{{"id", "x"}}).has_value());
  EXPECT_FALSE(detail::FromStoredJson(json::array()).has_value());
}

TEST(LowerForSearch, FoldsCommonScripts) {
  EXPECT_EQ(detail::LowerForSearch("ABC xyz 123"), "abc xyz 123");
  EXPECT_EQ(detail::LowerForSearch("\xC3\x84RGER \xC3\x9C"), "\xC3\xA4rger \xC3\xBC");  // ÄRGER Ü
  EXPECT_EQ(detail::LowerForSearch("\xC5\x81\xC3\x93\xC5\xB9"), "\xC5\x82\xC3\xB3\xC5\xBA");  // ŁÓŹ
  EXPECT_EQ(detail::LowerForSearch("\xD0\x9C\xD0\x98\xD0\xA0"), "\xD0\xBC\xD0\xB8\xD1\x80");  // МИР
  EXPECT_EQ(detail::LowerForSearch("\xCE\xA9"), "\xCF\x89");                                  // Ω
  EXPECT_EQ(detail::LowerForSearch("\xC3\x97"), "\xC3\x97");  // × stays
  EXPECT_EQ(detail::LowerForSearch("bad \xff"), "bad \xff");
}

// ---- Index --------------------------------------------------------------------

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/catalog_test.XXXXXX";
    const char* p = mkdtemp(tmpl);
    if (p == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = p;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class IndexTest : public RepositoryTest {
 protected:
  void SetUp() override { index_ = MustOpen(path_); }

  static std::unique_ptr<Index> MustOpen(const std::string& path) {
    auto index = OpenIndex(path);
    EXPECT_TRUE(index.ok()) << Describe(index);
    return index.ok() ? std::move(*index) : nullptr;
  }

  size_t MustSync(Index& index) {
    auto n = index.SyncFrom(repo_);
    EXPECT_TRUE(n.ok()) << Describe(n);
    return n.ok() ? *n : 0;
  }

  // Every item of a query, page by page; checks the pages on the way.
  std::vector<std::string> Walk(Index& index, Query q) {
    std::vector<std::string> ids;
    uint64_t total = 0;
    for (int pages = 0; pages < 1000; ++pages) {
      auto page = index.Find(q);
      EXPECT_TRUE(page.ok()) << Describe(page);
      if (!page.ok()) break;
      EXPECT_LE(page->items.size(), q.limit);
      if (pages == 0) total = page->total;
      EXPECT_EQ(page->total, total);
      for (const Video& v : page->items) ids.push_back(v.id);
      if (page->next_cursor.empty()) break;
      EXPECT_EQ(page->items.size(), q.limit);
      q.cursor = page->next_cursor;
    }
    EXPECT_EQ(ids.size(), total);
    return ids;
  }

  std::vector<std::string> Search(const std::string& text) {
    Query q;
    q.q = text;
    q.sort = "title";
    q.limit = 100;
    auto ids = Walk(*index_, q);
    std::sort(ids.begin(), ids.end());
    return ids;
  }

  TempDir dir_;
  std::string path_ = dir_.path() + "/state/index.sqlite";
  std::unique_ptr<Index> index_;
};

TEST_F(IndexTest, PaginationWalksEveryItemOnceInOrderForEverySort) {
  std::vector<Video> all;
  for (int i = 0; i < 250; ++i) {
    // Ties in created_at_ms (three per millisecond) and in titles (mixed
    // case) make the id the tie-breaker.
    if (i % 3 == 0) clock_.Advance(1ms);
    char id[16];
    std::snprintf(id, sizeof id, "v%03d", (i * 37) % 250);
    std::string title = "Title " + std::to_string(i % 40);
    if (i % 2 == 1) std::transform(title.begin(), title.end(), title.begin(), ::toupper);
    all.push_back(MustCreate(id, title));
  }
  EXPECT_EQ(MustSync(*index_), 250u);
  EXPECT_EQ(index_->size(), 250u);

  auto expect_order = [&](const std::string& sort, auto less) {
    std::vector<Video> sorted = all;
    std::sort(sorted.begin(), sorted.end(), less);
    std::vector<std::string> want;
    for (const Video& v : sorted) want.push_back(v.id);
    for (size_t limit : {1u, 7u, 24u, 100u}) {
      Query q;
      q.sort = sort;
      q.limit = limit;
      EXPECT_EQ(Walk(*index_, q), want) << sort << " limit " << limit;
    }
  };
  expect_order("newest", [](const Video& a, const Video& b) {
    return std::tie(a.created_at_ms, a.id) > std::tie(b.created_at_ms, b.id);
  });
  expect_order("oldest", [](const Video& a, const Video& b) {
    return std::tie(a.created_at_ms, a.id) < std::tie(b.created_at_ms, b.id);
  });
  expect_order("title", [](const Video& a, const Video& b) {
    const std::string la = detail::LowerForSearch(a.title), lb = detail::LowerForSearch(b.title);
    return std::tie(la, a.id) < std::tie(lb, b.id);
  });

  // Items carry every field.
  Query q;
  q.limit = 1;
  q.sort = "oldest";
  auto first = index_->Find(q);
  ASSERT_OK(first);
  ASSERT_EQ(first->items.size(), 1u);
  const Video& v = first->items[0];
  EXPECT_EQ(detail::ToStoredJson(v), detail::ToStoredJson(*repo_.Get(v.id)));
}

TEST_F(IndexTest, SearchIsCaseInsensitiveAndTakesWildcardsLiterally) {
  MustCreate("pct", "100% Real");
  MustCreate("nopct", "1000 real");
  MustCreate("under", "snake_case");
  MustCreate("nounder", "snakeXcase");
  MustCreate("slash", "back\\slash");
  MustCreate("noslash", "backslash");
  MustCreate("umlaut", "\xC3\x84rger im B\xC3\xBCro");  // Ärger im Büro
  ASSERT_OK(repo_.Update("noslash", VideoPatch{.description = "now 50% OFF"}));
  EXPECT_EQ(MustSync(*index_), 7u);

  using Ids = std::vector<std::string>;
  EXPECT_EQ(Search("%"), (Ids{"noslash", "pct"}));
  EXPECT_EQ(Search("_"), (Ids{"under"}));
  EXPECT_EQ(Search("e_c"), (Ids{"under"}));
  EXPECT_EQ(Search("\\"), (Ids{"slash"}));
  EXPECT_EQ(Search("0% r"), (Ids{"pct"}));
  EXPECT_EQ(Search("REAL"), (Ids{"nopct", "pct"}));
  EXPECT_EQ(Search("  50% off "), (Ids{"noslash"}));
  EXPECT_EQ(Search("\xC3\xA4RGER"), (Ids{"umlaut"}));  // äRGER
  EXPECT_EQ(Search("b\xC3\x9C"), (Ids{"umlaut"}));     // bÜ
  EXPECT_EQ(Search("about"), (Ids{"nopct", "nounder", "pct", "slash", "umlaut", "under"}));
  EXPECT_EQ(Search("nothing like this"), Ids{});
  EXPECT_EQ(Search("").size(), 7u);
}

TEST_F(IndexTest, RejectsBadCursorSortAndLimit) {
  for (int i = 0; i < 5; ++i) MustCreate("v" + std::to_string(i));
  MustSync(*index_);
  Query q;
  q.limit = 2;
  auto page = index_->Find(q);
  ASSERT_OK(page);
  ASSERT_FALSE(page->next_cursor.empty());
  const std::string cursor = page->next_cursor;

  auto code = [&](Query bad) { return index_->Find(bad).code(); };
  Query bad = q;
  for (size_t limit : {size_t{0}, size_t{101}, size_t{1'000'000}}) {
    bad = q;
    bad.limit = limit;
    EXPECT_EQ(code(bad), errc::invalid_argument) << limit;
  }
  bad = q;
  bad.sort = "random";
  EXPECT_EQ(code(bad), errc::invalid_argument);
  for (std::string c : {std::string("!!!"), std::string("abc"), std::string("a"), cursor + "x",
                        cursor.substr(1), std::string(5000, 'A'),
                        std::string("W10"),  // "[]"
                        std::string(1, '\0')}) {
    bad = q;
    bad.cursor = c;
    EXPECT_EQ(code(bad), errc::invalid_argument) << c;
  }
  bad = q;
  bad.sort = "title";
  bad.cursor = cursor;  // from another sort order
  EXPECT_EQ(code(bad), errc::invalid_argument);
  bad = q;
  bad.q = std::string(1001, 'q');
  EXPECT_EQ(code(bad), errc::invalid_argument);

  q.cursor = cursor;
  ASSERT_OK(index_->Find(q));
  q.limit = 100;
  EXPECT_EQ(index_->Find(q)->items.size(), 3u);
}

TEST_F(IndexTest, SyncFromFollowsOtherNodesAndRereadsOnlyWhatChanged) {
  MustCreate("v1", "one");
  MustCreate("v2", "two");
  MustCreate("v3", "three");
  EXPECT_EQ(MustSync(*index_), 3u);
  EXPECT_EQ(MustSync(*index_), 0u);

  // Another node creates a video: only its files appear on the storage.
  clock_.Advance(1s);
  const json record{{"id", "remote"},
                    {"created_at_ms", kStartMs + 1000},
                    {"original_name", "r.mp4"},
                    {"content_type", "video/mp4"},
                    {"title", "From afar"},
                    {"description", ""},
                    {"size", 5},
                    {"status", "ready"}};
  ASSERT_OK(store_->CreateExclusive("remote/video.json", record.dump()));
  EXPECT_EQ(MustSync(*index_), 1u);
  EXPECT_EQ(Search("afar"), std::vector<std::string>{"remote"});

  // Another node edits one video.
  clock_.Advance(1s);
  VideoRepository other(*store_, "node-b", clock_);
  ASSERT_OK(other.Update("v1", VideoPatch{.title = "one, renamed elsewhere"}));
  EXPECT_EQ(MustSync(*index_), 1u);
  EXPECT_EQ(Search("renamed"), std::vector<std::string>{"v1"});

  // A deletion drops it, and the tombstoned video is not re-read again.
  clock_.Advance(1s);
  ASSERT_OK(other.MarkDeleted("v2"));
  EXPECT_EQ(MustSync(*index_), 1u);
  EXPECT_EQ(index_->size(), 3u);
  EXPECT_EQ(Search("two"), std::vector<std::string>{});
  EXPECT_EQ(MustSync(*index_), 0u);

  // Reclaimed and vanished videos leave the index without a re-read.
  clock_.Advance(2h);
  ASSERT_OK(other.ReclaimIfExpired("v2", 3'600'000));
  ASSERT_OK(store_->RemoveAll("remote"));
  EXPECT_EQ(MustSync(*index_), 0u);
  EXPECT_EQ(index_->size(), 2u);
  EXPECT_EQ(Search(""), (std::vector<std::string>{"v1", "v3"}));

  // A corrupt video is left out and not re-read until its files change.
  ASSERT_OK(store_->WriteAtomic("broken/video.json", "{"));
  EXPECT_EQ(MustSync(*index_), 1u);
  EXPECT_EQ(MustSync(*index_), 0u);
  EXPECT_EQ(index_->size(), 2u);
}

TEST_F(IndexTest, PutAndRemove) {
  Video v = MustCreate("v1", "one");
  ASSERT_OK(index_->Put(v));
  EXPECT_EQ(index_->size(), 1u);
  // Put does not know the fingerprint: the next sync re-reads that video.
  EXPECT_EQ(MustSync(*index_), 1u);
  EXPECT_EQ(MustSync(*index_), 0u);
  v.deleted = true;
  ASSERT_OK(index_->Put(v));
  EXPECT_EQ(index_->size(), 0u);
  v.deleted = false;
  ASSERT_OK(index_->Put(v));
  ASSERT_OK(index_->Remove("v1"));
  ASSERT_OK(index_->Remove("never-there"));
  EXPECT_EQ(index_->size(), 0u);
  v.id = "bad id";
  EXPECT_EQ(index_->Put(v).code(), errc::invalid_argument);
}

TEST_F(IndexTest, CorruptIndexFileIsRebuilt) {
  for (int i = 0; i < 10; ++i) MustCreate("v" + std::to_string(i));
  EXPECT_EQ(MustSync(*index_), 10u);
  index_.reset();
  {
    std::ofstream out(path_, std::ios::binary | std::ios::trunc);
    for (int i = 0; i < 512; ++i) out << "this is not a database ";
  }
  index_ = MustOpen(path_);
  ASSERT_NE(index_, nullptr);
  EXPECT_EQ(index_->size(), 0u);
  EXPECT_EQ(MustSync(*index_), 10u);
  EXPECT_EQ(index_->size(), 10u);
}

TEST_F(IndexTest, OtherSchemaVersionIsRebuilt) {
  MustCreate("v1");
  MustSync(*index_);
  index_.reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "UPDATE meta SET value = '999'", nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  index_ = MustOpen(path_);
  ASSERT_NE(index_, nullptr);
  EXPECT_EQ(index_->size(), 0u);
  EXPECT_EQ(MustSync(*index_), 1u);
}

TEST_F(IndexTest, RebuildFromEmptyStateSeesTheWholeLibrary) {
  for (int i = 0; i < 30; ++i) {
    clock_.Advance(1ms);
    MustCreate("v" + std::to_string(i), "video " + std::to_string(i));
  }
  ASSERT_OK(repo_.Update("v3", VideoPatch{.title = "three"}));
  ASSERT_OK(repo_.MarkDeleted("v4"));
  EXPECT_EQ(MustSync(*index_), 30u);
  Query q;
  q.limit = 100;
  auto before = index_->Find(q);
  ASSERT_OK(before);
  EXPECT_EQ(before->total, 29u);

  TempDir fresh;  // a new STATE_DIR
  auto rebuilt = MustOpen(fresh.path() + "/index.sqlite");
  ASSERT_NE(rebuilt, nullptr);
  EXPECT_EQ(rebuilt->size(), 0u);
  EXPECT_EQ(MustSync(*rebuilt), 30u);
  auto after = rebuilt->Find(q);
  ASSERT_OK(after);
  ASSERT_EQ(after->items.size(), before->items.size());
  for (size_t i = 0; i < after->items.size(); ++i) {
    EXPECT_EQ(detail::ToStoredJson(after->items[i]), detail::ToStoredJson(before->items[i]));
  }
}

TEST_F(IndexTest, UnopenablePathIsAnError) {
  const std::string file = dir_.path() + "/a-file";
  std::ofstream(file) << "x";
  EXPECT_FALSE(OpenIndex(file + "/index.sqlite").ok());
}

TEST_F(IndexTest, FindAndSyncFromSeveralThreads) {
  for (int i = 0; i < 50; ++i) MustCreate("v" + std::to_string(i));
  std::thread syncer([&] {
    for (int i = 0; i < 5; ++i) {
      clock_.Advance(1ms);
      EXPECT_TRUE(repo_.Update("v" + std::to_string(i), VideoPatch{.title = "x"}).ok());
      EXPECT_TRUE(index_->SyncFrom(repo_).ok());
    }
  });
  std::thread reader([&] {
    Query q;
    q.limit = 10;
    for (int i = 0; i < 50; ++i) EXPECT_TRUE(index_->Find(q).ok());
  });
  syncer.join();
  reader.join();
  EXPECT_EQ(index_->size(), 50u);
}

TEST_F(IndexTest, CorruptionFoundWhileOpenResetsTheIndex) {
  for (int i = 0; i < 20; ++i) MustCreate("v" + std::to_string(i));
  EXPECT_EQ(MustSync(*index_), 20u);
  {
    // Move everything from the WAL into the file, then damage the file.
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
    std::fstream out(path_, std::ios::binary | std::ios::in | std::ios::out);
    for (int i = 0; i < 2048; ++i) out << "garbage!";
  }
  Query q;
  q.q = "about";
  auto damaged = index_->Find(q);
  EXPECT_EQ(damaged.code(), errc::corrupt) << Describe(damaged);
  auto empty = index_->Find(q);
  ASSERT_OK(empty);
  EXPECT_EQ(empty->total, 0u);
  EXPECT_EQ(MustSync(*index_), 20u);
  EXPECT_EQ(index_->Find(q)->total, 20u);
}

}  // namespace
}  // namespace hub::catalog
