#include "storage/store.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <latch>
#include <thread>

#include "core/clock.h"

namespace hub::storage {
namespace {

namespace fs = std::filesystem;
using std::chrono::hours;

constexpr int64_t kHourNanos = int64_t{3600} * 1'000'000'000;

template <class R>
std::string Describe(const R& r) {
  return r.ok() ? "ok" : r.error().message;
}

#define ASSERT_OK(expr)                                    \
  do {                                                     \
    auto&& r_ = (expr);                                    \
    ASSERT_TRUE(r_.ok()) << #expr << ": " << Describe(r_); \
  } while (0)
#define EXPECT_OK(expr)                                    \
  do {                                                     \
    auto&& r_ = (expr);                                    \
    EXPECT_TRUE(r_.ok()) << #expr << ": " << Describe(r_); \
  } while (0)
#define EXPECT_ERRC(expr, want)                                                   \
  do {                                                                            \
    auto&& r_ = (expr);                                                           \
    EXPECT_EQ(r_.code(), std::error_code(want)) << #expr << ": " << Describe(r_); \
  } while (0)

std::span<const char> Bytes(std::string_view s) { return {s.data(), s.size()}; }

std::string Read(Store& store, std::string_view path) {
  auto r = store.ReadAll(path, 64 << 20);
  return r.ok() ? *r : "<" + r.error().message + ">";
}

// Names in a real directory, including hidden and temp files.
std::vector<std::string> DiskNames(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  return names;
}

// A fresh directory under /tmp, removed with everything in it.
class Sandbox {
 public:
  Sandbox() {
    std::string tmpl = "/tmp/storage-test-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    path_ = tmpl;
  }
  ~Sandbox() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// Each environment gives a store and a way to make a file an hour older than
// "now" as the store sees it, without sleeping.
class LocalEnv {
 public:
  Store& store() { return *store_; }
  void AgeByAnHour(std::string_view path) {
    struct stat st {};
    std::string full = root_.string() + "/" + std::string(path);
    ASSERT_EQ(::lstat(full.c_str(), &st), 0);
    timespec times[2] = {st.st_atim, st.st_mtim};
    times[0].tv_sec -= 3600;
    times[1].tv_sec -= 3600;
    ASSERT_EQ(::utimensat(AT_FDCWD, full.c_str(), times, AT_SYMLINK_NOFOLLOW), 0);
  }
  // Nothing outside the root was touched.
  std::vector<std::string> OutsideRoot() { return DiskNames(sandbox_.path()); }
  std::vector<std::string> ExpectedOutsideRoot() { return {"root"}; }

 private:
  Sandbox sandbox_;
  fs::path root_ = sandbox_.path() / "root";
  std::unique_ptr<Store> store_ = OpenLocalStore(root_);
};

class MemEnv {
 public:
  Store& store() { return *store_; }
  void AgeByAnHour(std::string_view) { clock_.Advance(hours(1)); }
  std::vector<std::string> OutsideRoot() { return {}; }
  std::vector<std::string> ExpectedOutsideRoot() { return {}; }

 private:
  ManualClock clock_;
  std::unique_ptr<Store> store_ = NewMemStore(&clock_);
};

template <class Env>
class StoreContractTest : public testing::Test {
 protected:
  Store& store() { return env_.store(); }
  Env env_;
};

class EnvNames {
 public:
  template <class T>
  static std::string GetName(int) {
    return std::is_same_v<T, LocalEnv> ? "Local" : "Mem";
  }
};
using Envs = testing::Types<LocalEnv, MemEnv>;
TYPED_TEST_SUITE(StoreContractTest, Envs, EnvNames);

TYPED_TEST(StoreContractTest, WriteAtomicReplacesWholeContent) {
  Store& s = this->store();
  ASSERT_OK(s.WriteAtomic("a/b/c.json", "first version"));
  EXPECT_EQ(Read(s, "a/b/c.json"), "first version");
  ASSERT_OK(s.WriteAtomic("a/b/c.json", "v2"));
  EXPECT_EQ(Read(s, "a/b/c.json"), "v2");
  ASSERT_OK(s.WriteAtomic("a/b/c.json", ""));
  EXPECT_EQ(Read(s, "a/b/c.json"), "");
  auto names = s.List("a/b");
  ASSERT_OK(names);
  EXPECT_EQ(*names, std::vector<std::string>{"c.json"});
}

TYPED_TEST(StoreContractTest, ConcurrentReadersSeeOldOrNewNeverAMix) {
  Store& s = this->store();
  const std::string a(64 * 1024, 'a');
  const std::string b(64 * 1024, 'b');
  ASSERT_OK(s.WriteAtomic("doc", a));
  std::atomic<bool> done = false;
  std::thread writer([&] {
    for (int i = 0; i < 40; ++i) EXPECT_OK(s.WriteAtomic("doc", i % 2 ? a : b));
    done = true;
  });
  int reads = 0;
  while (!done || reads < 10) {
    std::string got = Read(s, "doc");
    ASSERT_TRUE(got == a || got == b) << "torn read of " << got.size() << " bytes";
    ++reads;
  }
  writer.join();
}

TYPED_TEST(StoreContractTest, OpenReadIsASnapshotOfTheFileAtOpen) {
  Store& s = this->store();
  ASSERT_OK(s.WriteAtomic("doc", "old content"));
  auto file = s.OpenRead("doc");
  ASSERT_OK(file);
  ASSERT_OK(s.WriteAtomic("doc", "new"));
  EXPECT_EQ((*file)->size(), 11u);
  char buf[32];
  auto n = (*file)->ReadAt(4, buf);
  ASSERT_OK(n);
  EXPECT_EQ(std::string_view(buf, *n), "content");
  n = (*file)->ReadAt(11, buf);
  ASSERT_OK(n);
  EXPECT_EQ(*n, 0u);
  n = (*file)->ReadAt(1000, buf);
  ASSERT_OK(n);
  EXPECT_EQ(*n, 0u);
  EXPECT_EQ(Read(s, "doc"), "new");
}

TYPED_TEST(StoreContractTest, ExactlyOneOfManyRacingCreatorsWins) {
  Store& s = this->store();
  constexpr int kThreads = 8;
  constexpr int kRounds = 40;
  std::atomic<int> wins[kRounds] = {};
  std::atomic<int> losses = 0;
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int r = 0; r < kRounds; ++r) {
        auto result = s.CreateExclusive("claims/" + std::to_string(r), "node-" + std::to_string(t));
        if (result.ok()) {
          ++wins[r];
        } else {
          EXPECT_EQ(result.code(), std::error_code(errc::already_exists)) << Describe(result);
          ++losses;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < kRounds; ++r) {
    EXPECT_EQ(wins[r], 1) << "round " << r;
    EXPECT_TRUE(Read(s, "claims/" + std::to_string(r)).starts_with("node-"));
  }
  EXPECT_EQ(losses, kRounds * (kThreads - 1));
}

TYPED_TEST(StoreContractTest, CreateExclusiveNeverReplaces) {
  Store& s = this->store();
  ASSERT_OK(s.CreateExclusive("uploads/x/chunk-0", "mine"));
  EXPECT_ERRC(s.CreateExclusive("uploads/x/chunk-0", "theirs"), errc::already_exists);
  EXPECT_ERRC(s.CreateExclusive("uploads/x", "a directory"), errc::already_exists);
  EXPECT_EQ(Read(s, "uploads/x/chunk-0"), "mine");
}

TYPED_TEST(StoreContractTest, PathValidationRejectsEveryTrickAndTouchesNothing) {
  Store& s = this->store();
  ASSERT_OK(s.WriteAtomic("ok", "keep"));
  const std::vector<std::string> bad = {
      "../x",
      "a/../../b",
      "/abs",
      "a//b",
      std::string("a\0b", 3),
      ".",
      "..",
      "a/./b",
      "./x",
      "x/..",
      "a/",
      "a\\b",
      "..\\x",
      ".tmp-123",
      "a/.tmp-x",
      "",
      "/",
      std::string(300, 'c'),
      std::string(256, 'd'),
      "a/" + std::string(300, 'e') + "/b",
      std::string(5000, 'f'),
  };
  for (const std::string& p : bad) {
    SCOPED_TRACE(testing::Message() << "path of " << p.size() << " bytes: " << p.substr(0, 40));
    EXPECT_FALSE(IsValidPath(p));
    EXPECT_ERRC(s.OpenRead(p), errc::invalid_path);
    EXPECT_ERRC(s.ReadAll(p, 100), errc::invalid_path);
    EXPECT_ERRC(s.WriteAtomic(p, "x"), errc::invalid_path);
    EXPECT_ERRC(s.CreateExclusive(p, "x"), errc::invalid_path);
    EXPECT_ERRC(s.OpenWrite(p, true), errc::invalid_path);
    EXPECT_ERRC(s.Stat(p), errc::invalid_path);
    if (!p.empty()) EXPECT_ERRC(s.List(p), errc::invalid_path);
    EXPECT_ERRC(s.Rename(p, "moved"), errc::invalid_path);
    EXPECT_ERRC(s.Rename("ok", p), errc::invalid_path);
    EXPECT_ERRC(s.Remove(p), errc::invalid_path);
    EXPECT_ERRC(s.RemoveAll(p), errc::invalid_path);
    EXPECT_ERRC(s.Touch(p), errc::invalid_path);
  }
  auto names = s.List("");
  ASSERT_OK(names);
  EXPECT_EQ(*names, std::vector<std::string>{"ok"});
  EXPECT_EQ(Read(s, "ok"), "keep");
  EXPECT_EQ(this->env_.OutsideRoot(), this->env_.ExpectedOutsideRoot());
}

TYPED_TEST(StoreContractTest, ValidPathsAreAccepted) {
  Store& s = this->store();
  for (std::string p : {"a", "b/c.d", "x/.hidden", "x/..dots", "x/.tmp", "x/tmp-1", "é/ü",
                        "with space/and:colon"}) {
    EXPECT_TRUE(IsValidPath(p)) << p;
    EXPECT_OK(s.WriteAtomic(p, p));
    EXPECT_EQ(Read(s, p), p);
  }
  std::string longest(255, 'n');
  EXPECT_TRUE(IsValidPath(longest));
  EXPECT_OK(s.WriteAtomic("long/" + longest, "x"));
}

TYPED_TEST(StoreContractTest, ReadAllIsBounded) {
  Store& s = this->store();
  ASSERT_OK(s.WriteAtomic("f", std::string(100, 'x')));
  auto all = s.ReadAll("f", 100);
  ASSERT_OK(all);
  EXPECT_EQ(all->size(), 100u);
  EXPECT_ERRC(s.ReadAll("f", 99), errc::too_large);
  EXPECT_ERRC(s.ReadAll("f", 0), errc::too_large);
  ASSERT_OK(s.WriteAtomic("empty", ""));
  EXPECT_OK(s.ReadAll("empty", 0));
}

TYPED_TEST(StoreContractTest, OpenWriteAppendsTruncatesAndReopensAtEnd) {
  Store& s = this->store();
  EXPECT_ERRC(s.OpenWrite("logs/a.log", false), errc::not_found);
  auto w = s.OpenWrite("logs/a.log", true);
  ASSERT_OK(w);
  WritableFile& f = **w;
  EXPECT_EQ(f.size(), 0u);
  ASSERT_OK(f.Append(Bytes("hello")));
  ASSERT_OK(f.Append(Bytes(" world")));
  EXPECT_EQ(f.size(), 11u);
  ASSERT_OK(f.Truncate(5));
  EXPECT_EQ(f.size(), 5u);
  EXPECT_ERRC(f.Truncate(6), errc::io_error);
  ASSERT_OK(f.Append(Bytes("!")));
  ASSERT_OK(f.Append(Bytes("")));
  ASSERT_OK(f.Sync());
  ASSERT_OK(f.Close());
  EXPECT_OK(f.Close());
  EXPECT_ERRC(f.Append(Bytes("late")), errc::io_error);
  EXPECT_ERRC(f.Sync(), errc::io_error);
  EXPECT_EQ(Read(s, "logs/a.log"), "hello!");

  auto again = s.OpenWrite("logs/a.log", false);
  ASSERT_OK(again);
  EXPECT_EQ((*again)->size(), 6u);
  ASSERT_OK((*again)->Append(Bytes(" more")));
  ASSERT_OK((*again)->Close());
  EXPECT_EQ(Read(s, "logs/a.log"), "hello! more");
  auto info = s.Stat("logs/a.log");
  ASSERT_OK(info);
  EXPECT_EQ(info->size, 11u);

  // create=true on an existing file keeps its content.
  auto third = s.OpenWrite("logs/a.log", true);
  ASSERT_OK(third);
  EXPECT_EQ((*third)->size(), 11u);
}

TYPED_TEST(StoreContractTest, WriterKeepsItsFileAcrossRemoveAndReplace) {
  Store& s = this->store();
  auto w = s.OpenWrite("f", true);
  ASSERT_OK(w);
  ASSERT_OK((*w)->Append(Bytes("abc")));
  ASSERT_OK(s.WriteAtomic("f", "replaced"));
  ASSERT_OK((*w)->Append(Bytes("def")));  // goes to the old file, as on disk
  EXPECT_EQ(Read(s, "f"), "replaced");
  ASSERT_OK(s.Remove("f"));
  EXPECT_OK((*w)->Append(Bytes("ghi")));
  EXPECT_OK((*w)->Close());
  EXPECT_ERRC(s.Stat("f"), errc::not_found);
}

TYPED_TEST(StoreContractTest, LargeFilesRoundTrip) {
  Store& s = this->store();
  std::string data(3 * 1024 * 1024 + 17, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 131 % 251);
  auto w = s.OpenWrite("big", true);
  ASSERT_OK(w);
  for (size_t off = 0; off < data.size(); off += 100'000) {
    ASSERT_OK((*w)->Append(Bytes(std::string_view(data).substr(off, 100'000))));
  }
  ASSERT_OK((*w)->Close());
  EXPECT_TRUE(Read(s, "big") == data);
  auto r = s.OpenRead("big");
  ASSERT_OK(r);
  std::string back(data.size(), '\0');
  auto n = (*r)->ReadAt(0, back);
  ASSERT_OK(n);
  EXPECT_EQ(*n, data.size());
  EXPECT_TRUE(back == data);
}

TYPED_TEST(StoreContractTest, AppendFromCopiesARangeOfAnotherFile) {
  Store& s = this->store();
  std::string src_data(3'000'000, '\0');
  for (size_t i = 0; i < src_data.size(); ++i) src_data[i] = static_cast<char>(i * 7 + i / 1000);
  ASSERT_OK(s.WriteAtomic("src", src_data));
  auto src = s.OpenRead("src");
  ASSERT_OK(src);
  auto w = s.OpenWrite("dst", true);
  ASSERT_OK(w);
  ASSERT_OK((*w)->Append(std::span<const char>("head", 4)));
  ASSERT_OK((*w)->AppendFrom(**src, 100, 2'500'000));
  EXPECT_EQ((*w)->size(), 4u + 2'500'000u);
  // Past the end of the source: an error, and the file ends where it did.
  EXPECT_FALSE((*w)->AppendFrom(**src, 2'999'990, 20).ok());
  EXPECT_EQ((*w)->size(), 4u + 2'500'000u);
  ASSERT_OK((*w)->Sync());
  ASSERT_OK((*w)->Close());
  EXPECT_TRUE(Read(s, "dst") == "head" + src_data.substr(100, 2'500'000));
}

// Regression: the root was listed through a dup() of a long-lived fd, which
// shares its offset, so every listing after the first came back empty.
TYPED_TEST(StoreContractTest, ListingTheRootTwiceSeesTheSameEntries) {
  Store& s = this->store();
  ASSERT_OK(s.WriteAtomic("a/x", "1"));
  ASSERT_OK(s.WriteAtomic("b", "2"));
  for (int i = 0; i < 3; ++i) {
    auto names = s.List("");
    ASSERT_OK(names);
    EXPECT_EQ(*names, (std::vector<std::string>{"a", "b"})) << "listing " << i;
    auto sub = s.List("a");
    ASSERT_OK(sub);
    EXPECT_EQ(*sub, std::vector<std::string>{"x"}) << "listing " << i;
  }
}

TYPED_TEST(StoreContractTest, ListIsSortedAndShowsOnlyDirectEntries) {
  Store& s = this->store();
  ASSERT_OK(s.WriteAtomic("d/b", "1"));
  ASSERT_OK(s.WriteAtomic("d/a", "2"));
  ASSERT_OK(s.WriteAtomic("d/C", "3"));
  ASSERT_OK(s.WriteAtomic("d/c/x", "4"));
  auto names = s.List("d");
  ASSERT_OK(names);
  EXPECT_EQ(*names, (std::vector<std::string>{"C", "a", "b", "c"}));
  auto root = s.List("");
  ASSERT_OK(root);
  EXPECT_EQ(*root, std::vector<std::string>{"d"});
  EXPECT_ERRC(s.List("nope"), errc::not_found);
  EXPECT_ERRC(s.List("d/a"), errc::not_a_directory);
  ASSERT_OK(s.RemoveAll("d/c/x"));
  auto empty = s.List("d/c");
  ASSERT_OK(empty);
  EXPECT_TRUE(empty->empty());
}

TYPED_TEST(StoreContractTest, RenameReplacesAndCreatesParents) {
  Store& s = this->store();
  ASSERT_OK(s.WriteAtomic("a", "one"));
  ASSERT_OK(s.WriteAtomic("b", "two"));
  ASSERT_OK(s.Rename("a", "b"));
  EXPECT_EQ(Read(s, "b"), "one");
  EXPECT_ERRC(s.Stat("a"), errc::not_found);
  ASSERT_OK(s.Rename("b", "x/y/z"));
  EXPECT_EQ(Read(s, "x/y/z"), "one");
  ASSERT_OK(s.Rename("x/y/z", "x/y/z"));
  EXPECT_EQ(Read(s, "x/y/z"), "one");
  ASSERT_OK(s.Rename("x", "moved"));
  EXPECT_EQ(Read(s, "moved/y/z"), "one");
  EXPECT_ERRC(s.Rename("nope", "other"), errc::not_found);
  EXPECT_ERRC(s.Rename("missing/dir/f", "other"), errc::not_found);
  // rename(2) rules for directories.
  ASSERT_OK(s.WriteAtomic("file", "f"));
  EXPECT_ERRC(s.Rename("file", "moved"), errc::io_error);  // file over a directory
  EXPECT_ERRC(s.Rename("moved", "file"), errc::not_a_directory);
  ASSERT_OK(s.WriteAtomic("full/x", "x"));
  EXPECT_ERRC(s.Rename("moved", "full"), errc::io_error);  // over a non-empty directory
  EXPECT_ERRC(s.Rename("moved", "moved/y/inside"), errc::io_error);
  ASSERT_OK(s.RemoveAll("full/x"));
  ASSERT_OK(s.Rename("moved", "full"));  // over an empty directory
  EXPECT_EQ(Read(s, "full/y/z"), "one");
}

TYPED_TEST(StoreContractTest, RemoveTakesFilesAndEmptyDirsRemoveAllTakesTrees) {
  Store& s = this->store();
  ASSERT_OK(s.WriteAtomic("t/a/1", "1"));
  ASSERT_OK(s.WriteAtomic("t/a/b/2", "2"));
  ASSERT_OK(s.WriteAtomic("t/f", "f"));
  EXPECT_ERRC(s.Remove("t/a"), errc::io_error);
  ASSERT_OK(s.Remove("t/f"));
  EXPECT_ERRC(s.Remove("t/f"), errc::not_found);
  ASSERT_OK(s.RemoveAll("t/a"));
  EXPECT_ERRC(s.Stat("t/a"), errc::not_found);
  ASSERT_OK(s.RemoveAll("t/a"));
  ASSERT_OK(s.RemoveAll("never/was/here"));
  ASSERT_OK(s.Remove("t"));  // now empty
  ASSERT_OK(s.WriteAtomic("file", "f"));
  ASSERT_OK(s.RemoveAll("file/below"));  // nothing can be below a file
  ASSERT_OK(s.RemoveAll("file"));
  auto root = s.List("");
  ASSERT_OK(root);
  EXPECT_TRUE(root->empty());
}

TYPED_TEST(StoreContractTest, MissingThingsAreNotFoundAndFilesAreNotDirectories) {
  Store& s = this->store();
  EXPECT_ERRC(s.OpenRead("nope"), errc::not_found);
  EXPECT_ERRC(s.ReadAll("nope", 10), errc::not_found);
  EXPECT_ERRC(s.Stat("nope"), errc::not_found);
  EXPECT_ERRC(s.Touch("nope"), errc::not_found);
  EXPECT_ERRC(s.Remove("nope"), errc::not_found);
  EXPECT_ERRC(s.OpenWrite("deep/nope", false), errc::not_found);
  EXPECT_ERRC(s.Stat("deep"), errc::not_found);  // create=false made no parents
  EXPECT_ERRC(s.OpenRead("no/such/dir/f"), errc::not_found);

  ASSERT_OK(s.WriteAtomic("f", "x"));
  EXPECT_ERRC(s.Stat("f/x"), errc::not_a_directory);
  EXPECT_ERRC(s.ReadAll("f/x", 10), errc::not_a_directory);
  EXPECT_ERRC(s.WriteAtomic("f/x", "y"), errc::not_a_directory);
  EXPECT_ERRC(s.OpenWrite("f/x", true), errc::not_a_directory);

  ASSERT_OK(s.WriteAtomic("dir/child", "x"));
  EXPECT_ERRC(s.OpenRead("dir"), errc::io_error);
  EXPECT_ERRC(s.ReadAll("dir", 10), errc::io_error);
  EXPECT_ERRC(s.OpenWrite("dir", true), errc::io_error);
  EXPECT_ERRC(s.WriteAtomic("dir", "x"), errc::io_error);
}

TYPED_TEST(StoreContractTest, StatReportsSizeAndKind) {
  Store& s = this->store();
  ASSERT_OK(s.WriteAtomic("d/f", "12345"));
  auto f = s.Stat("d/f");
  ASSERT_OK(f);
  EXPECT_EQ(f->size, 5u);
  EXPECT_FALSE(f->is_directory);
  EXPECT_GT(f->mtime_unix_nanos, 0);
  auto d = s.Stat("d");
  ASSERT_OK(d);
  EXPECT_TRUE(d->is_directory);
}

TYPED_TEST(StoreContractTest, TouchMovesMtimeToNow) {
  Store& s = this->store();
  ASSERT_OK(s.WriteAtomic("uploads/u1/info", "{}"));
  this->env_.AgeByAnHour("uploads/u1/info");
  auto before = s.Stat("uploads/u1/info");
  ASSERT_OK(before);
  ASSERT_OK(s.Touch("uploads/u1/info"));
  auto after = s.Stat("uploads/u1/info");
  ASSERT_OK(after);
  EXPECT_GE(after->mtime_unix_nanos - before->mtime_unix_nanos, kHourNanos / 2);
  EXPECT_EQ(Read(s, "uploads/u1/info"), "{}");
  EXPECT_OK(s.Touch("uploads/u1"));  // directories too
}

TYPED_TEST(StoreContractTest, InterruptedWriteAtomicLeavesOldContent) {
  Store& s = this->store();
  ASSERT_OK(s.WriteAtomic("doc", "committed"));
  auto faulty = NewFaultyStore(&s);
  faulty->FailAfter(0, errc::io_error);
  EXPECT_ERRC(faulty->WriteAtomic("doc", "half-written"), errc::io_error);
  EXPECT_EQ(Read(s, "doc"), "committed");
  EXPECT_EQ(Read(*faulty, "doc"), "committed");  // reads never fail
  auto names = s.List("");
  ASSERT_OK(names);
  EXPECT_EQ(*names, std::vector<std::string>{"doc"});
}

// STYLE.md #10: fail the 1st, 2nd, ... mutating call of a commit sequence
// until it succeeds; every failure must leave the committed content intact.
TYPED_TEST(StoreContractTest, CountdownFailuresNeverLoseCommittedContent) {
  Store& s = this->store();
  ASSERT_OK(s.WriteAtomic("doc", "v1"));
  auto faulty = NewFaultyStore(&s);
  auto commit = [](Store& store) -> Result<void> {
    HUB_TRY(store.WriteAtomic("staging/doc", "v2"));
    auto log = store.OpenWrite("journal/node-a.log", true);
    if (!log) return log.error();
    HUB_TRY((*log)->Append(Bytes("rec1;")));
    HUB_TRY((*log)->Append(Bytes("rec2;")));
    HUB_TRY((*log)->Sync());
    HUB_TRY((*log)->Close());
    HUB_TRY(store.Rename("staging/doc", "doc"));
    return Ok();
  };
  int k = 0;
  for (;; ++k) {
    ASSERT_LT(k, 50) << "the sequence never succeeded";
    faulty->Reset();
    faulty->FailAfter(k, errc::no_space);
    auto r = commit(*faulty);
    if (r.ok()) break;
    SCOPED_TRACE(testing::Message() << "failing call " << k + 1 << ": " << r.error().message);
    EXPECT_EQ(r.code(), std::error_code(errc::no_space));
    EXPECT_EQ(faulty->mutating_calls(), k + 1);
    EXPECT_EQ(Read(s, "doc"), "v1");
    if (auto log = s.ReadAll("journal/node-a.log", 100); log.ok()) {
      EXPECT_TRUE(std::string_view("rec1;rec2;").starts_with(*log)) << *log;
    }
    faulty->Reset();
    ASSERT_OK(faulty->RemoveAll("staging"));
    ASSERT_OK(faulty->RemoveAll("journal"));
  }
  EXPECT_EQ(k, 7);
  EXPECT_EQ(faulty->mutating_calls(), 7);
  EXPECT_EQ(Read(s, "doc"), "v2");
  EXPECT_EQ(Read(s, "journal/node-a.log"), "rec1;rec2;");
}

TYPED_TEST(StoreContractTest, FaultyStoreCountsFailsAndResets) {
  Store& s = this->store();
  auto faulty = NewFaultyStore(&s);
  ASSERT_OK(faulty->WriteAtomic("a", "1"));
  ASSERT_OK(faulty->Touch("a"));
  EXPECT_EQ(faulty->mutating_calls(), 2);
  faulty->FailAfter(1, errc::no_space);
  EXPECT_OK(faulty->CreateExclusive("b", "2"));
  EXPECT_ERRC(faulty->Rename("a", "c"), errc::no_space);
  EXPECT_ERRC(faulty->Remove("a"), errc::no_space);
  EXPECT_ERRC(faulty->OpenWrite("a", false), errc::no_space);
  EXPECT_EQ(faulty->mutating_calls(), 6);
  // Reads never fail.
  EXPECT_OK(faulty->Stat("a"));
  EXPECT_OK(faulty->List(""));
  EXPECT_OK(faulty->OpenRead("a"));
  EXPECT_OK(faulty->Space());
  EXPECT_EQ(faulty->mutating_calls(), 6);
  faulty->Reset();
  EXPECT_EQ(faulty->mutating_calls(), 0);
  EXPECT_OK(faulty->Rename("a", "c"));
  EXPECT_EQ(Read(s, "c"), "1");

  // A failed Append writes nothing and leaves size() alone.
  auto w = faulty->OpenWrite("log", true);
  ASSERT_OK(w);
  ASSERT_OK((*w)->Append(Bytes("ok;")));
  faulty->FailAfter(0, errc::io_error);
  EXPECT_ERRC((*w)->Append(Bytes("lost")), errc::io_error);
  EXPECT_EQ((*w)->size(), 3u);
  EXPECT_EQ(Read(s, "log"), "ok;");
}

// ---- LocalStore only -------------------------------------------------------

TEST(LocalStoreTest, SymlinksInsideRootAreNotFollowed) {
  Sandbox sb;
  fs::path root = sb.path() / "root";
  fs::path outside = sb.path() / "outside";
  fs::create_directories(root);
  fs::create_directories(outside);
  std::ofstream(outside / "secret") << "secret";
  fs::create_directory_symlink(outside, root / "dirlink");
  fs::create_symlink(outside / "secret", root / "filelink");
  fs::create_directories(root / "sub");
  fs::create_directory_symlink("../../outside", root / "sub" / "rel");
  struct timespec old[2] = {{1'000'000, 0}, {1'000'000, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (outside / "secret").c_str(), old, 0), 0);
  auto s = OpenLocalStore(root);

  EXPECT_FALSE(s->OpenRead("filelink").ok());
  EXPECT_FALSE(s->ReadAll("filelink", 100).ok());
  EXPECT_FALSE(s->ReadAll("dirlink/secret", 100).ok());
  EXPECT_FALSE(s->ReadAll("sub/rel/secret", 100).ok());
  EXPECT_FALSE(s->OpenWrite("filelink", false).ok());
  EXPECT_FALSE(s->OpenWrite("filelink", true).ok());
  EXPECT_FALSE(s->OpenWrite("dirlink/secret", false).ok());
  EXPECT_FALSE(s->WriteAtomic("dirlink/new", "x").ok());
  EXPECT_FALSE(s->CreateExclusive("dirlink/new", "x").ok());
  EXPECT_FALSE(s->CreateExclusive("filelink", "x").ok());
  EXPECT_FALSE(s->List("dirlink").ok());
  EXPECT_FALSE(s->Touch("dirlink/secret").ok());
  EXPECT_FALSE(s->Rename("dirlink/secret", "stolen").ok());
  EXPECT_FALSE(s->Remove("dirlink/secret").ok());
  EXPECT_OK(s->RemoveAll("dirlink/secret"));  // nothing there as far as the store sees
  EXPECT_OK(s->Touch("filelink"));            // the link itself
  auto info = s->Stat("filelink");
  ASSERT_OK(info);
  EXPECT_FALSE(info->is_directory);
  EXPECT_ERRC(s->ReadAll("filelink", 100), errc::io_error);
  // Replacing or removing a link acts on the link, never on its target.
  EXPECT_OK(s->WriteAtomic("filelink", "replaced"));
  EXPECT_EQ(Read(*s, "filelink"), "replaced");
  EXPECT_OK(s->RemoveAll("dirlink"));
  EXPECT_OK(s->RemoveAll("sub"));

  EXPECT_EQ(DiskNames(outside), std::vector<std::string>{"secret"});
  std::ifstream in(outside / "secret");
  std::string content((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(content, "secret");
  struct stat st {};
  ASSERT_EQ(::stat((outside / "secret").c_str(), &st), 0);
  EXPECT_EQ(st.st_mtim.tv_sec, 1'000'000);
  EXPECT_EQ(DiskNames(root), std::vector<std::string>{"filelink"});
}

TEST(LocalStoreTest, FifoInsideRootDoesNotHangOpens) {
  Sandbox sb;
  ASSERT_EQ(::mkfifo((sb.path() / "pipe").c_str(), 0600), 0);
  auto s = OpenLocalStore(sb.path());
  EXPECT_ERRC(s->OpenRead("pipe"), errc::io_error);
  EXPECT_ERRC(s->ReadAll("pipe", 10), errc::io_error);
  EXPECT_ERRC(s->OpenWrite("pipe", true), errc::io_error);
  EXPECT_ERRC(s->CreateExclusive("pipe", "x"), errc::already_exists);
}

TEST(LocalStoreTest, FullFilesystemIsNoSpaceAndLeavesOldContent) {
  Sandbox sb;
  fs::path mnt = sb.path() / "small";
  fs::create_directories(mnt);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=1m") != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs: " << std::strerror(errno);
  }
  struct Unmount {
    fs::path dir;
    ~Unmount() { ::umount2(dir.c_str(), MNT_DETACH); }
  } unmount{mnt};
  {
    auto s = OpenLocalStore(mnt);
    const std::string big(2 << 20, 'x');
    ASSERT_OK(s->WriteAtomic("doc", "old"));

    auto r = s->WriteAtomic("doc", big);
    EXPECT_ERRC(r, errc::no_space);
    if (!r.ok()) {
      EXPECT_NE(r.error().message.find(mnt.string() + "/doc"), std::string::npos)
          << r.error().message;
      EXPECT_NE(r.error().message.find("free space"), std::string::npos);
    }
    EXPECT_EQ(Read(*s, "doc"), "old");

    EXPECT_ERRC(s->CreateExclusive("claim", big), errc::no_space);
    EXPECT_ERRC(s->Stat("claim"), errc::not_found);  // a failed claim is withdrawn

    auto w = s->OpenWrite("log", true);
    ASSERT_OK(w);
    ASSERT_OK((*w)->Append(Bytes("head;")));
    EXPECT_ERRC((*w)->Append(Bytes(big)), errc::no_space);
    EXPECT_EQ((*w)->size(), 5u);
    ASSERT_OK((*w)->Close());
    EXPECT_EQ(Read(*s, "log"), "head;");

    EXPECT_EQ(DiskNames(mnt), (std::vector<std::string>{"doc", "log"}));  // no temp left
    auto space = s->Space();
    ASSERT_OK(space);
    EXPECT_EQ(space->capacity_bytes, 1u << 20);
    EXPECT_LE(space->available_bytes, space->capacity_bytes);
  }
}

TEST(LocalStoreTest, TempFilesAreHiddenAndNeverLeftBehind) {
  Sandbox sb;
  auto s = OpenLocalStore(sb.path());
  for (int i = 0; i < 5; ++i) ASSERT_OK(s->WriteAtomic("d/doc", std::to_string(i)));
  EXPECT_EQ(DiskNames(sb.path() / "d"), std::vector<std::string>{"doc"});
  std::ofstream(sb.path() / "d" / ".tmp-stale") << "crashed writer";
  auto names = s->List("d");
  ASSERT_OK(names);
  EXPECT_EQ(*names, std::vector<std::string>{"doc"});
  ASSERT_OK(s->RemoveAll("d"));  // temp files do not block removal
  EXPECT_FALSE(fs::exists(sb.path() / "d"));
}

TEST(LocalStoreTest, ReadableFileHasANativeHandleForSendfile) {
  Sandbox sb;
  auto s = OpenLocalStore(sb.path());
  ASSERT_OK(s->WriteAtomic("v/seg.ts", "0123456789"));
  auto f = s->OpenRead("v/seg.ts");
  ASSERT_OK(f);
  int fd = (*f)->native_handle();
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(::fcntl(fd, F_GETFD) & FD_CLOEXEC);
  EXPECT_FALSE(::fcntl(fd, F_GETFL) & O_NONBLOCK);  // sendfile must block on the file
  char buf[4];
  ASSERT_EQ(::pread(fd, buf, 4, 3), 4);
  EXPECT_EQ(std::string_view(buf, 4), "3456");
  struct stat st {};
  ASSERT_EQ(::stat((sb.path() / "v" / "seg.ts").c_str(), &st), 0);
  EXPECT_EQ((*f)->mtime_unix_nanos(),
            int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec);
}

TEST(LocalStoreTest, ErrorsNameThePathAndTheCause) {
  Sandbox sb;
  auto s = OpenLocalStore(sb.path().string() + "/");
  EXPECT_EQ(s->Describe(), "local:" + sb.path().string());
  auto r = s->ReadAll("videos/missing.json", 10);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), std::error_code(errc::not_found));
  EXPECT_NE(r.error().message.find(sb.path().string() + "/videos"), std::string::npos)
      << r.error().message;
  EXPECT_NE(r.error().message.find("No such file or directory"), std::string::npos);
  EXPECT_EQ(r.code().category().name(), std::string("hub.storage"));
  EXPECT_EQ(r.code().message(), "not found");
}

TEST(LocalStoreTest, OpenLocalStoreCreatesRootOrThrows) {
  Sandbox sb;
  auto s = OpenLocalStore((sb.path() / "a" / "b").string());
  EXPECT_TRUE(fs::is_directory(sb.path() / "a" / "b"));
  std::ofstream(sb.path() / "file") << "x";
  EXPECT_THROW(OpenLocalStore((sb.path() / "file").string()), std::runtime_error);
  EXPECT_THROW(OpenLocalStore((sb.path() / "file" / "below").string()), std::runtime_error);
}

TEST(LocalStoreTest, WorksWithoutSync) {
  Sandbox sb;
  auto s = OpenLocalStore(sb.path(), {.sync = false});
  ASSERT_OK(s->WriteAtomic("a/b", "x"));
  ASSERT_OK(s->CreateExclusive("a/c", "y"));
  auto w = s->OpenWrite("a/d", true);
  ASSERT_OK(w);
  ASSERT_OK((*w)->Append(Bytes("z")));
  ASSERT_OK((*w)->Sync());
  ASSERT_OK((*w)->Close());
  EXPECT_EQ(Read(*s, "a/b") + Read(*s, "a/c") + Read(*s, "a/d"), "xyz");
}

// ---- MemStore only ---------------------------------------------------------

TEST(MemStoreTest, HasNoNativeHandleAndPlentyOfSpace) {
  auto s = NewMemStore();
  ASSERT_OK(s->WriteAtomic("f", "x"));
  auto f = s->OpenRead("f");
  ASSERT_OK(f);
  EXPECT_EQ((*f)->native_handle(), -1);
  auto space = s->Space();
  ASSERT_OK(space);
  EXPECT_GE(space->available_bytes, uint64_t{1} << 40);
  EXPECT_EQ(s->Describe(), "mem:");
}

TEST(MemStoreTest, MtimesFollowTheInjectedClock) {
  ManualClock clock(5'000'000'000);
  auto s = NewMemStore(&clock);
  ASSERT_OK(s->WriteAtomic("f", "x"));
  clock.Advance(std::chrono::seconds(10));
  auto w = s->OpenWrite("f", false);
  ASSERT_OK(w);
  ASSERT_OK((*w)->Append(Bytes("y")));
  auto info = s->Stat("f");
  ASSERT_OK(info);
  EXPECT_EQ(info->mtime_unix_nanos, 15'000'000'000);
}

TEST(StorePathTest, ErrorCategoryNamesEveryCode) {
  for (errc e : {errc::not_found, errc::already_exists, errc::invalid_path, errc::no_space,
                 errc::too_large, errc::not_a_directory, errc::io_error}) {
    std::error_code ec = e;
    EXPECT_EQ(&ec.category(), &category());
    EXPECT_NE(ec.message(), "unknown storage error");
  }
}

}  // namespace
}  // namespace hub::storage
