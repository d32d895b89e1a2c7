#include "notes/notepad.h"

#include <gtest/gtest.h>

#include "notes/detail/test_text.h"

#include <filesystem>
#include <map>
#include <set>
#include <mutex>
#include <random>
#include <thread>

#include "core/ids.h"
#include "notes/log.h"
#include "notes/trace.h"

namespace hub::notes {
namespace {

using testing::Splice;
using testing::U32;
using testing::Utf8;

using storage::Store;

// ---- helpers ----

std::vector<Edit> E(int64_t pos, int64_t del, std::string ins) {
  return {Edit{pos, del, std::move(ins)}};
}

std::string Text(const Notepad& p, std::string_view id) {
  std::string t;
  auto r = p.Get(id, &t, /*include_deleted=*/true);
  EXPECT_TRUE(r.ok()) << r.error().message;
  return t;
}

Version Ver(const Notepad& p, std::string_view id) {
  auto r = p.Get(id, nullptr, /*include_deleted=*/true);
  EXPECT_TRUE(r.ok()) << r.error().message;
  if (!r.ok()) return {};
  return *Version::Decode(r->version);
}

uint64_t FileSize(Store& s, const std::string& path) {
  auto st = s.Stat(path);
  return st.ok() ? st->size : 0;
}

std::string LogOf(std::string_view id, std::string_view node) {
  return std::string(id) + "/logs/" + std::string(node) + ".log";
}

// Records the changes a listener sees.
struct Recorder {
  std::mutex mu;
  std::vector<NoteChange> changes;
  Notepad::Listener Fn() {
    return [this](const NoteChange& c) {
      std::lock_guard lock(mu);
      changes.push_back(c);
    };
  }
  std::vector<NoteChange> Take() {
    std::lock_guard lock(mu);
    return std::exchange(changes, {});
  }
};

// Every text change, applied to the text at `from`, gives the text at `to`;
// per note the changes chain (each starts where the previous one ended).
void ExpectChangesReplay(const Notepad& p, const std::vector<NoteChange>& changes) {
  std::map<std::string, Version> last;
  for (const NoteChange& c : changes) {
    if (c.metadata) {
      EXPECT_TRUE(c.edits.empty());
      continue;
    }
    if (auto it = last.find(c.id); it != last.end()) {
      EXPECT_EQ(it->second, c.from);
    }
    last[c.id] = c.to;
    auto from = p.TextAt(c.id, c.from);
    auto to = p.TextAt(c.id, c.to);
    ASSERT_TRUE(from.ok()) << from.error().message;
    ASSERT_TRUE(to.ok()) << to.error().message;
    EXPECT_EQ(Splice(*from, c.edits), *to);
  }
}

class NotepadTest : public ::testing::Test {
 protected:
  std::unique_ptr<Notepad> Make(std::string node, NotepadOptions o = {}, Store* s = nullptr) {
    o.node = std::move(node);
    auto p = std::make_unique<Notepad>(s ? *s : *store_, clock_, o);
    auto r = p->Open();
    EXPECT_TRUE(r.ok()) << r.error().message;
    return p;
  }

  NoteInfo CreateNote(Notepad& p, std::string title, std::string text) {
    auto r = p.Create(title, text, "ann");
    EXPECT_TRUE(r.ok()) << r.error().message;
    return r.ok() ? *r : NoteInfo{};
  }

  ManualClock clock_;
  std::unique_ptr<Store> store_ = storage::NewMemStore(&clock_);
};

// ---- notes: create, list, search, rename, delete, restore ----

TEST_F(NotepadTest, CreateGetListAndSearch) {
  auto p = Make("a");
  NoteInfo n1 = CreateNote(*p, "  Shopping list \n", "Milk, EGGS, bread");
  clock_.Advance(std::chrono::milliseconds(5));
  NoteInfo n2 = CreateNote(*p, "Ideas ✓", "");
  EXPECT_TRUE(IsValidId(n1.id));
  EXPECT_EQ(n1.title, "Shopping list");
  EXPECT_EQ(n1.size, 17u);
  EXPECT_EQ(n1.length, 17u);
  EXPECT_EQ(n1.updated_by, "ann");
  EXPECT_EQ(n2.size, 0u);
  std::string text;
  auto g = p->Get(n1.id, &text);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(text, "Milk, EGGS, bread");
  EXPECT_EQ(g->version, n1.version);

  auto all = p->List("", false);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].id, n2.id);  // most recently updated first
  EXPECT_EQ(all[1].id, n1.id);
  ASSERT_EQ(p->List("eggs", false).size(), 1u);  // case-insensitive, in the text
  EXPECT_EQ(p->List("SHOPPING", false)[0].id, n1.id);  // in the title
  EXPECT_EQ(p->List("ideas", false)[0].id, n2.id);
  EXPECT_TRUE(p->List("nowhere", false).empty());

  // Edits update the search.
  ASSERT_TRUE(p->ApplyEdits(n2.id, Version{}, E(0, 0, "buy a boat"), "bob").ok());
  EXPECT_EQ(p->List("boat", false)[0].id, n2.id);
  EXPECT_EQ(p->Get(n2.id, nullptr)->updated_by, "bob");
  EXPECT_EQ(p->stats().notes, 2u);
}

TEST_F(NotepadTest, RefusesBadTitlesAndBoundsAuthors) {
  auto p = Make("a");
  for (std::string bad : {std::string(), std::string(" \t\n "), std::string(201, 't'),
                          std::string("tab\tinside"), std::string("bad \xC3\x28 utf8"),
                          std::string("nul\0x", 5), std::string("c1 \xC2\x85")}) {
    auto r = p->Create(bad, "", "ann");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.code(), notepad_errc::bad_title);
    EXPECT_FALSE(r.error().message.empty());
  }
  EXPECT_TRUE(p->Create(std::string(200, 't'), "", "ann").ok());
  EXPECT_TRUE(p->List("", true).size() == 1);

  // An author is cut to 64 bytes on a code point boundary.
  std::string author = std::string(63, 'a') + "é";  // 65 bytes
  auto r = p->Create("T", "", author);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->updated_by, std::string(63, 'a'));

  auto missing = p->Get("no-such-note", nullptr);
  EXPECT_EQ(missing.code(), notepad_errc::not_found);
  EXPECT_EQ(p->Get("../etc", nullptr).code(), notepad_errc::not_found);
  p->PollNote("../etc");  // not a valid id: touches nothing
}

TEST_F(NotepadTest, NodeNameIsChecked) {
  for (std::string bad : {std::string(), std::string("a/b"), std::string(65, 'n'),
                          std::string("with space"), std::string("..")}) {
    NotepadOptions o;
    o.node = bad;
    EXPECT_THROW(Notepad(*store_, clock_, o), std::invalid_argument) << bad;
  }
}

TEST_F(NotepadTest, RenameDeleteRestoreThenGoneAfterTheWindowAndSweep) {
  NotepadOptions o;
  o.restore_window_ms = 1000;
  auto p = Make("a", o);
  NoteInfo n = CreateNote(*p, "Title", "text");

  clock_.Advance(std::chrono::milliseconds(10));
  auto renamed = p->Rename(n.id, " New title ", "bob");
  ASSERT_TRUE(renamed.ok());
  EXPECT_EQ(renamed->title, "New title");
  EXPECT_EQ(renamed->updated_by, "bob");
  EXPECT_EQ(p->Rename(n.id, "", "bob").code(), notepad_errc::bad_title);

  ASSERT_TRUE(p->Delete(n.id, "bob").ok());
  EXPECT_EQ(p->Get(n.id, nullptr).code(), notepad_errc::not_found);
  auto deleted = p->Get(n.id, nullptr, true);
  ASSERT_TRUE(deleted.ok());
  EXPECT_TRUE(deleted->deleted);
  EXPECT_EQ(deleted->deleted_ms, clock_.NowUnixMillis());
  EXPECT_TRUE(p->List("", false).empty());
  EXPECT_EQ(p->List("", true).size(), 1u);
  EXPECT_EQ(p->ApplyEdits(n.id, Ver(*p, n.id), E(0, 0, "x"), "bob").code(),
            notepad_errc::deleted);
  EXPECT_EQ(p->Rename(n.id, "x", "bob").code(), notepad_errc::deleted);

  clock_.Advance(std::chrono::milliseconds(500));
  auto restored = p->Restore(n.id, "cy");
  ASSERT_TRUE(restored.ok());
  EXPECT_FALSE(restored->deleted);
  EXPECT_EQ(Text(*p, n.id), "text");
  EXPECT_TRUE(p->ApplyEdits(n.id, Ver(*p, n.id), E(4, 0, "!"), "cy").ok());

  // A restart sees the same.
  auto q = Make("a", o);
  auto again = q->Get(n.id, nullptr);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->title, "New title");
  EXPECT_FALSE(again->deleted);
  EXPECT_EQ(Text(*q, n.id), "text!");
  q.reset();

  ASSERT_TRUE(p->Delete(n.id, "dan").ok());
  EXPECT_EQ(p->Sweep(), 0u);  // within the window
  clock_.Advance(std::chrono::milliseconds(1001));
  EXPECT_EQ(p->Get(n.id, nullptr, true).code(), notepad_errc::gone);
  EXPECT_EQ(p->Restore(n.id, "dan").code(), notepad_errc::gone);
  EXPECT_TRUE(p->List("", true).empty());
  EXPECT_EQ(p->Sweep(), 1u);
  EXPECT_EQ(p->Get(n.id, nullptr, true).code(), notepad_errc::not_found);
  EXPECT_FALSE(store_->Stat(n.id).ok());
  EXPECT_EQ(p->Sweep(), 0u);
}

// ---- edits ----

TEST_F(NotepadTest, EditsAtAnOldBaseMergeAndDocErrorsPassThrough) {
  auto p = Make("a");
  NoteInfo n = CreateNote(*p, "T", "hello world");
  Version v0 = *Version::Decode(n.version);
  auto r1 = p->ApplyEdits(n.id, v0, E(6, 0, "big "), "ann");
  ASSERT_TRUE(r1.ok());
  EXPECT_EQ(r1->size, 15u);
  // Another client still at v0 appends an exclamation mark after "world".
  auto r2 = p->ApplyEdits(n.id, v0, E(11, 0, "!"), "bob");
  ASSERT_TRUE(r2.ok()) << r2.error().message;
  EXPECT_EQ(Text(*p, n.id), "hello big world!");
  EXPECT_TRUE(r2->version.Includes(r1->version));
  EXPECT_EQ(r2->length, 16u);

  // require_current refuses an old base; the current one passes.
  auto stale = p->ApplyEdits(n.id, v0, E(0, 0, "x"), "bob", /*require_current=*/true);
  EXPECT_EQ(stale.code(), notepad_errc::stale);
  EXPECT_TRUE(p->ApplyEdits(n.id, r2->version, E(0, 0, ">"), "bob", true).ok());

  // Errors of the CRDT come through unchanged, the note untouched.
  uint64_t log = FileSize(*store_, LogOf(n.id, "a"));
  Version cur = Ver(*p, n.id);
  EXPECT_EQ(p->ApplyEdits(n.id, cur, E(100, 0, "x"), "b").code(), errc::bad_position);
  EXPECT_EQ(p->ApplyEdits(n.id, cur, E(0, 100, ""), "b").code(), errc::bad_delete);
  EXPECT_EQ(p->ApplyEdits(n.id, cur, E(0, 0, "\xFF"), "b").code(), errc::bad_utf8);
  Version unknown;
  unknown.Set("zed", 3);
  EXPECT_EQ(p->ApplyEdits(n.id, unknown, E(0, 0, "x"), "b").code(), errc::unknown_version);
  EXPECT_EQ(p->ApplyEdits(n.id, cur, E(0, 0, "x"), "b", false, std::string(65, 'g')).code(),
            errc::bad_agent);
  EXPECT_EQ(Text(*p, n.id), ">hello big world!");
  EXPECT_EQ(FileSize(*store_, LogOf(n.id, "a")), log);
  EXPECT_EQ(p->ApplyEdits("nope", cur, E(0, 0, "x"), "b").code(), notepad_errc::not_found);

  // Empty requests change and write nothing.
  auto none = p->ApplyEdits(n.id, cur, {}, "b");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->version, cur);
  EXPECT_EQ(FileSize(*store_, LogOf(n.id, "a")), log);
}

TEST_F(NotepadTest, TooLargeLeavesTheNoteUnchanged) {
  NotepadOptions o;
  o.max_size_bytes = 100;
  auto p = Make("a", o);
  NoteInfo n = CreateNote(*p, "T", std::string(90, 'x'));
  uint64_t log = FileSize(*store_, LogOf(n.id, "a"));
  auto r = p->ApplyEdits(n.id, Ver(*p, n.id), E(0, 0, std::string(11, 'y')), "ann");
  EXPECT_EQ(r.code(), errc::too_large);
  EXPECT_EQ(Text(*p, n.id), std::string(90, 'x'));
  EXPECT_EQ(FileSize(*store_, LogOf(n.id, "a")), log);
  EXPECT_EQ(p->Create("T", std::string(101, 'z'), "ann").code(), errc::too_large);
  EXPECT_TRUE(p->ApplyEdits(n.id, Ver(*p, n.id), E(0, 0, std::string(10, 'y')), "ann").ok());
}

// Regression: a poll that ran while a note was being created registered the
// half-written note (no create record yet), and the creator's note was then
// "not found" for good.
TEST_F(NotepadTest, NotesCreatedWhilePollingAreFound) {
  auto p = Make("a");
  std::atomic<bool> stop{false};
  std::thread poller([&] {
    while (!stop) p->Poll();
  });
  std::vector<std::string> ids;
  for (int i = 0; i < 400; ++i) ids.push_back(CreateNote(*p, "T" + std::to_string(i), "x").id);
  stop = true;
  poller.join();
  for (const auto& id : ids) {
    std::string t;
    auto r = p->Get(id, &t);
    ASSERT_TRUE(r.ok()) << id << ": " << r.error().message;
    EXPECT_EQ(t, "x");
  }
}

TEST_F(NotepadTest, AgentsAreCrdtWritersAndOriginsReachTheListener) {
  auto p = Make("a");
  Recorder rec, second;
  p->SetListener(rec.Fn());
  p->AddListener(second.Fn());
  NoteInfo n = CreateNote(*p, "T", "abc");
  auto r = p->ApplyEdits(n.id, Ver(*p, n.id), E(3, 0, "d"), "ann", false, "session-1", "ws-7");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->version.Count("session-1"), 1u);
  EXPECT_EQ(second.Take().size(), 2u);  // every listener hears every change
  auto changes = rec.Take();
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_TRUE(changes[0].metadata);  // created
  EXPECT_EQ(changes[1].origin, "ws-7");
  ASSERT_EQ(changes[1].edits.size(), 1u);
  EXPECT_EQ(changes[1].edits[0].insert, "d");
  // A restart loads the session agent's operations from node a's log.
  auto q = Make("a");
  EXPECT_EQ(Text(*q, n.id), "abcd");
  EXPECT_EQ(Ver(*q, n.id), r->version);
}

TEST_F(NotepadTest, ListenerChangesTurnTheOldTextIntoTheNew) {
  auto a = Make("a");
  auto b = Make("b");
  Recorder ra, rb;
  a->SetListener(ra.Fn());
  b->SetListener(rb.Fn());
  NoteInfo n = CreateNote(*a, "T", "The quick brown fox");
  Version v0 = *Version::Decode(n.version);
  ASSERT_TRUE(a->ApplyEdits(n.id, v0, E(4, 5, "slow"), "ann").ok());  // local, current base
  ASSERT_TRUE(a->ApplyEdits(n.id, v0, E(16, 3, "dog"), "ann").ok());  // local, old base
  b->Poll();                                                          // remote: discovered
  ASSERT_TRUE(b->ApplyEdits(n.id, Ver(*b, n.id), E(0, 0, "« "), "bob").ok());
  ASSERT_TRUE(b->ApplyEdits(n.id, Ver(*b, n.id), std::vector<Edit>{{0, 2, ""}, {0, 0, "» "}}, "bob").ok());
  ASSERT_TRUE(a->ApplyEdits(n.id, Ver(*a, n.id), E(0, 0, "1 "), "ann").ok());
  EXPECT_EQ(a->Poll(), 1u);  // remote, by poll
  EXPECT_EQ(b->Poll(), 1u);
  EXPECT_EQ(a->Poll(), 0u);
  EXPECT_EQ(Text(*a, n.id), Text(*b, n.id));
  std::string merged = Text(*a, n.id);
  EXPECT_TRUE(merged == "» 1 The slow brown dog" || merged == "1 » The slow brown dog") << merged;
  auto ca = ra.Take(), cb = rb.Take();
  EXPECT_GE(ca.size(), 5u);
  EXPECT_GE(cb.size(), 4u);
  ExpectChangesReplay(*a, ca);
  ExpectChangesReplay(*b, cb);
  // Metadata from another node arrives as a metadata change.
  ASSERT_TRUE(b->Rename(n.id, "Renamed", "bob").ok());
  EXPECT_EQ(a->Poll(), 1u);
  ca = ra.Take();
  ASSERT_EQ(ca.size(), 1u);
  EXPECT_TRUE(ca[0].metadata);
  EXPECT_EQ(a->Get(n.id, nullptr)->title, "Renamed");
}

// ---- several nodes on one store ----

TEST_F(NotepadTest, TwoNodesEditingConcurrentlyConvergeAfterPoll) {
  auto a = Make("a");
  auto b = Make("b");
  NoteInfo n = CreateNote(*a, "T", "shared line\n");
  EXPECT_EQ(b->Poll(), 1u);
  Version base = Ver(*b, n.id);
  ASSERT_EQ(base, Ver(*a, n.id));
  // Both edit at the same version, at the same place, without seeing each other.
  ASSERT_TRUE(a->ApplyEdits(n.id, base, E(12, 0, "from a\n"), "ann").ok());
  ASSERT_TRUE(b->ApplyEdits(n.id, base, E(12, 0, "from b\n"), "bob").ok());
  ASSERT_TRUE(b->ApplyEdits(n.id, base, E(0, 6, "SHARED"), "bob").ok());
  a->Poll();
  b->Poll();
  std::string ta = Text(*a, n.id), tb = Text(*b, n.id);
  EXPECT_EQ(ta, tb);
  EXPECT_NE(ta.find("from a\n"), std::string::npos);
  EXPECT_NE(ta.find("from b\n"), std::string::npos);
  EXPECT_EQ(ta.rfind("SHARED line\n", 0), 0u);
  EXPECT_EQ(Ver(*a, n.id), Ver(*b, n.id));
  // Metadata converges too: the later rename wins everywhere.
  ASSERT_TRUE(a->Rename(n.id, "by a", "ann").ok());
  clock_.Advance(std::chrono::milliseconds(1));
  ASSERT_TRUE(b->Rename(n.id, "by b", "bob").ok());
  a->Poll();
  b->Poll();
  EXPECT_EQ(a->Get(n.id, nullptr)->title, "by b");
  EXPECT_EQ(b->Get(n.id, nullptr)->title, "by b");
  // History lists edits of both nodes, newest first.
  auto h = a->History(n.id);
  ASSERT_TRUE(h.ok());
  ASSERT_EQ(h->size(), 4u);  // the create's text and three edits
  std::set<std::string> nodes;
  for (const Revision& r : *h) nodes.insert(r.node);
  EXPECT_EQ(nodes, (std::set<std::string>{"a", "b"}));
}

class LoadingTest : public NotepadTest, public ::testing::WithParamInterface<bool> {};

TEST_P(LoadingTest, ALaterInstanceAndARestartLoadEverything) {
  NotepadOptions o;
  o.snapshot_after_bytes = GetParam() ? 200 : 1ull << 40;
  auto a = Make("a", o);
  auto b = Make("b", o);
  std::vector<std::string> ids;
  std::mt19937 rng(3);
  for (int i = 0; i < 4; ++i) ids.push_back(CreateNote(*a, "note " + std::to_string(i), "x").id);
  b->Poll();
  for (int round = 0; round < 60; ++round) {
    Notepad& p = round % 2 ? *a : *b;
    const std::string& id = ids[rng() % ids.size()];
    uint64_t len = p.Get(id, nullptr)->length;
    int64_t pos = static_cast<int64_t>(rng() % (len + 1));
    ASSERT_TRUE(p.ApplyEdits(id, Ver(p, id), E(pos, 0, "w" + std::to_string(round)), "u").ok());
    if (round % 7 == 0) {
      a->Poll();
      b->Poll();
    }
  }
  ASSERT_TRUE(b->Rename(ids[1], "renamed", "bob").ok());
  ASSERT_TRUE(a->Delete(ids[2], "ann").ok());
  a->Poll();
  b->Poll();
  if (GetParam()) {
    EXPECT_GT(a->stats().snapshots_written + b->stats().snapshots_written, 0u);
  } else {
    EXPECT_EQ(a->stats().snapshots_written + b->stats().snapshots_written, 0u);
  }

  auto c = Make("c", o);   // a third node, opened later
  auto a2 = Make("a", o);  // a restart of a
  for (Notepad* p : {c.get(), a2.get()}) {
    for (const std::string& id : ids) {
      EXPECT_EQ(Text(*p, id), Text(*a, id)) << id;
      EXPECT_EQ(Ver(*p, id), Ver(*a, id)) << id;
      auto i1 = p->Get(id, nullptr, true), i2 = a->Get(id, nullptr, true);
      EXPECT_EQ(i1->title, i2->title);
      EXPECT_EQ(i1->deleted, i2->deleted);
      EXPECT_EQ(i1->created_ms, i2->created_ms);
      EXPECT_EQ(p->History(id)->size(), a->History(id)->size());
    }
    EXPECT_EQ(p->List("", false).size(), 3u);
  }
  // The restarted node continues its own operation sequence.
  ASSERT_TRUE(a2->ApplyEdits(ids[0], Ver(*a2, ids[0]), E(0, 0, "again "), "ann").ok());
  c->Poll();
  b->Poll();
  EXPECT_EQ(Text(*c, ids[0]), Text(*a2, ids[0]));
  EXPECT_EQ(Text(*b, ids[0]), Text(*a2, ids[0]));
}

INSTANTIATE_TEST_SUITE_P(Snapshots, LoadingTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "with" : "without"; });

TEST_F(NotepadTest, SnapshotIsWrittenAfterEnoughLogAndMakesLoadingReadLess) {
  NotepadOptions small;
  small.snapshot_after_bytes = 2000;
  NotepadOptions never;
  never.snapshot_after_bytes = 1ull << 40;
  auto a = Make("a", small);
  NoteInfo n = CreateNote(*a, "T", "start");
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(a->ApplyEdits(n.id, Ver(*a, n.id), E(0, 0, "edit " + std::to_string(i) + "\n"),
                              "ann").ok());
  }
  EXPECT_GE(a->stats().snapshots_written, 3u);
  EXPECT_TRUE(store_->Stat(n.id + "/snapshots/a.snap").ok());

  auto with = Make("c", never);
  uint64_t read_with = with->stats().records_read;
  ASSERT_TRUE(store_->RemoveAll(n.id + "/snapshots").ok());
  auto without = Make("d", never);
  uint64_t read_without = without->stats().records_read;
  EXPECT_EQ(read_without, 202u);  // create, the text, 200 edits
  EXPECT_LT(read_with, read_without / 4);
  EXPECT_EQ(Text(*with, n.id), Text(*a, n.id));
  EXPECT_EQ(Text(*without, n.id), Text(*a, n.id));
  EXPECT_EQ(with->History(n.id)->size(), 201u);
  EXPECT_EQ(with->Get(n.id, nullptr)->created_ms, n.created_ms);

  // A damaged snapshot is ignored: the logs are read instead.
  ASSERT_TRUE(a->ApplyEdits(n.id, Ver(*a, n.id), E(0, 0, std::string(2100, 's')), "ann").ok());
  auto snap = store_->ReadAll(n.id + "/snapshots/a.snap", 1 << 20);
  ASSERT_TRUE(snap.ok());
  std::string bad = *snap;
  bad[bad.size() / 2] ^= 0x40;
  ASSERT_TRUE(store_->WriteAtomic(n.id + "/snapshots/a.snap", bad).ok());
  auto e = Make("e", never);
  EXPECT_EQ(Text(*e, n.id), Text(*a, n.id));
  EXPECT_EQ(e->stats().records_read, 203u);
}

// ---- idempotency keys (uid) ----

TEST_F(NotepadTest, AnEditWithAUidAppliedTwiceIsAppliedOnce) {
  auto a = Make("a");
  NoteInfo n = CreateNote(*a, "T", "abc");
  Recorder rec;
  a->SetListener(rec.Fn());
  Version base = Ver(*a, n.id);
  auto first = a->ApplyEdits(n.id, base, E(3, 0, "XYZ"), "ann", false, {}, {}, "uid-1");
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_FALSE(first->duplicate);
  EXPECT_EQ(rec.Take().size(), 1u);
  // Someone else edits meanwhile: the text cannot tell the retry from a new edit.
  ASSERT_TRUE(a->ApplyEdits(n.id, Ver(*a, n.id), E(0, 0, ">"), "bob").ok());
  rec.Take();
  std::string text = Text(*a, n.id);
  size_t history = a->History(n.id)->size();
  uint64_t log = FileSize(*store_, LogOf(n.id, "a"));
  // The retry, even with require_current at an old base (not `stale`).
  for (bool require_current : {false, true}) {
    auto again = a->ApplyEdits(n.id, base, E(3, 0, "XYZ"), "ann", require_current, {}, {}, "uid-1");
    ASSERT_TRUE(again.ok()) << again.error().message;
    EXPECT_TRUE(again->duplicate);
    EXPECT_EQ(again->version, first->version);
    EXPECT_EQ(again->size, first->size);
    EXPECT_EQ(again->length, first->length);
  }
  EXPECT_EQ(Text(*a, n.id), ">abcXYZ");
  EXPECT_EQ(Text(*a, n.id), text);
  EXPECT_EQ(a->History(n.id)->size(), history);
  EXPECT_EQ(FileSize(*store_, LogOf(n.id, "a")), log);
  EXPECT_TRUE(rec.Take().empty());
  // Another uid is another edit; a bad uid is refused.
  auto other = a->ApplyEdits(n.id, base, E(3, 0, "XYZ"), "ann", false, {}, {}, "uid-2");
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(other->duplicate);
  EXPECT_EQ(Text(*a, n.id), ">abcXYZXYZ");
  for (std::string bad : {std::string("has space"), std::string(65, 'u'), std::string("\x01")}) {
    auto r = a->ApplyEdits(n.id, Ver(*a, n.id), E(0, 0, "!"), "ann", false, {}, {}, bad);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.code(), notepad_errc::bad_uid);
  }
  EXPECT_EQ(Text(*a, n.id), ">abcXYZXYZ");
}

TEST_F(NotepadTest, AUidAppliedOnOneNodeIsKnownToAnotherAfterPollAndAfterARestart) {
  NotepadOptions small;
  small.snapshot_after_bytes = 300;  // snapshots too must keep the uids
  auto a = Make("a", small);
  auto b = Make("b", small);
  NoteInfo n = CreateNote(*a, "T", "abc");
  b->Poll();
  Version base = Ver(*b, n.id);
  auto on_a = a->ApplyEdits(n.id, base, E(0, 0, "A"), "ann", false, {}, {}, "k1");
  ASSERT_TRUE(on_a.ok());
  for (int i = 0; i < 20; ++i) {  // enough log for snapshots on both nodes
    ASSERT_TRUE(a->ApplyEdits(n.id, Ver(*a, n.id), E(0, 0, "filler " + std::to_string(i) + "\n"),
                              "ann").ok());
  }
  b->Poll();
  std::string text = Text(*b, n.id);
  uint64_t log_b = FileSize(*store_, LogOf(n.id, "b"));
  auto on_b = b->ApplyEdits(n.id, base, E(0, 0, "A"), "ann", false, {}, {}, "k1");
  ASSERT_TRUE(on_b.ok());
  EXPECT_TRUE(on_b->duplicate);
  EXPECT_EQ(on_b->version, on_a->version);
  EXPECT_EQ(on_b->length, on_a->length);
  EXPECT_EQ(Text(*b, n.id), text);
  EXPECT_EQ(FileSize(*store_, LogOf(n.id, "b")), log_b);
  // b applies k2; a learns it by polling.
  auto k2 = b->ApplyEdits(n.id, Ver(*b, n.id), E(0, 0, "B"), "bob", false, {}, {}, "k2");
  ASSERT_TRUE(k2.ok() && !k2->duplicate);
  a->Poll();
  auto k2a = a->ApplyEdits(n.id, base, E(0, 0, "B"), "bob", false, {}, {}, "k2");
  ASSERT_TRUE(k2a.ok());
  EXPECT_TRUE(k2a->duplicate);
  EXPECT_EQ(k2a->version, k2->version);
  EXPECT_GE(a->stats().snapshots_written + b->stats().snapshots_written, 1u);
  // Restarts remember both (from the snapshot and the logs after it, or the logs only).
  std::string now = Text(*a, n.id);
  for (bool with_snapshots : {true, false}) {
    if (!with_snapshots) {
      ASSERT_TRUE(store_->RemoveAll(n.id + "/snapshots").ok());
    }
    NotepadOptions never;
    never.snapshot_after_bytes = 1ull << 40;
    auto a2 = Make("a", never);
    for (std::string uid : {"k1", "k2"}) {
      auto r = a2->ApplyEdits(n.id, base, E(0, 0, "again"), "ann", false, {}, {}, uid);
      ASSERT_TRUE(r.ok());
      EXPECT_TRUE(r->duplicate) << uid << " " << with_snapshots;
    }
    EXPECT_EQ(Text(*a2, n.id), now);
  }
}

TEST_F(NotepadTest, UidMemoryIsBoundedOldestForgotten) {
  NotepadOptions o;
  o.max_uids = 3;
  auto a = Make("a", o);
  NoteInfo n = CreateNote(*a, "T", "");
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(a->ApplyEdits(n.id, Ver(*a, n.id), E(0, 0, "x"), "ann", false, {}, {},
                              "u" + std::to_string(i)).ok());
  }
  auto old = a->ApplyEdits(n.id, Ver(*a, n.id), E(0, 0, "x"), "ann", false, {}, {}, "u0");
  ASSERT_TRUE(old.ok());
  EXPECT_FALSE(old->duplicate);  // forgotten: applied again
  auto recent = a->ApplyEdits(n.id, Ver(*a, n.id), E(0, 0, "x"), "ann", false, {}, {}, "u4");
  ASSERT_TRUE(recent.ok());
  EXPECT_TRUE(recent->duplicate);
}

TEST_F(NotepadTest, OpsRecordsWithoutUidStillLoad) {
  // A log written by an older version: ops records end after the operations.
  auto a = Make("a");
  NoteInfo n = CreateNote(*a, "T", "old");
  ASSERT_TRUE(a->ApplyEdits(n.id, Ver(*a, n.id), E(3, 0, " text"), "ann").ok());
  auto bytes = store_->ReadAll(LogOf(n.id, "a"), 1 << 20);
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(bytes->find("uid"), std::string::npos);
  auto b = Make("b");
  EXPECT_EQ(Text(*b, n.id), "old text");
  EXPECT_EQ(b->History(n.id)->size(), 2u);
  EXPECT_EQ(b->stats().bad_records, 0u);
  auto r = b->ApplyEdits(n.id, Ver(*b, n.id), E(0, 0, "new "), "bob", false, {}, {}, "uid");
  ASSERT_TRUE(r.ok() && !r->duplicate);
  EXPECT_EQ(Text(*b, n.id), "new old text");
}

TEST_F(NotepadTest, HistoryAndRestoreRevision) {
  auto p = Make("a");
  NoteInfo n = CreateNote(*p, "T", "héllo wörld 🎉");
  clock_.Advance(std::chrono::milliseconds(1));
  ASSERT_TRUE(p->ApplyEdits(n.id, Ver(*p, n.id), E(7, 1, "ô"), "bob").ok());
  clock_.Advance(std::chrono::milliseconds(1));
  ASSERT_TRUE(p->ApplyEdits(n.id, Ver(*p, n.id), E(13, 0, "!"), "cy").ok());
  auto h = p->History(n.id);
  ASSERT_TRUE(h.ok());
  ASSERT_EQ(h->size(), 3u);
  EXPECT_EQ((*h)[0].author, "cy");
  EXPECT_EQ((*h)[2].author, "ann");
  EXPECT_EQ((*h)[0].node, "a");
  EXPECT_GT((*h)[0].at_ms, (*h)[1].at_ms);
  EXPECT_EQ(*p->TextAt(n.id, *Version::Decode((*h)[2].version)), "héllo wörld 🎉");
  EXPECT_EQ(*p->TextAt(n.id, *Version::Decode((*h)[1].version)), "héllo wôrld 🎉");
  EXPECT_EQ((*h)[1].size, std::string("héllo wôrld 🎉").size());

  Recorder rec;
  p->SetListener(rec.Fn());
  auto r = p->RestoreRevision(n.id, *Version::Decode((*h)[2].version), "dan");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(Text(*p, n.id), "héllo wörld 🎉");
  EXPECT_EQ(p->History(n.id)->size(), 4u);
  EXPECT_EQ(p->History(n.id)->front().author, "dan");
  // The newest revision is still readable: history is never rewritten.
  EXPECT_EQ(*p->TextAt(n.id, *Version::Decode((*h)[0].version)), "héllo wôrld 🎉!");
  auto changes = rec.Take();
  ASSERT_EQ(changes.size(), 1u);
  ASSERT_EQ(changes[0].edits.size(), 1u);
  EXPECT_EQ(changes[0].edits[0].position, 7);  // one small edit, in code points
  EXPECT_EQ(changes[0].edits[0].delete_count, 7);
  ExpectChangesReplay(*p, changes);
  // Restoring the current text writes nothing.
  uint64_t log = FileSize(*store_, LogOf(n.id, "a"));
  ASSERT_TRUE(p->RestoreRevision(n.id, Ver(*p, n.id), "dan").ok());
  EXPECT_EQ(FileSize(*store_, LogOf(n.id, "a")), log);

  // Catch-up edits.
  Version current;
  auto since = p->ChangesSince(n.id, *Version::Decode((*h)[0].version), &current);
  ASSERT_TRUE(since.ok());
  EXPECT_EQ(Splice("héllo wôrld 🎉!", *since), Text(*p, n.id));
  EXPECT_EQ(current, Ver(*p, n.id));
}

TEST_F(NotepadTest, HistoryIsCappedNewestFirst) {
  NotepadOptions o;
  o.max_history = 5;
  auto p = Make("a", o);
  NoteInfo n = CreateNote(*p, "T", "");
  for (int i = 0; i < 23; ++i) {
    clock_.Advance(std::chrono::milliseconds(1));
    ASSERT_TRUE(p->ApplyEdits(n.id, Ver(*p, n.id), E(0, 0, "x"), std::to_string(i)).ok());
  }
  auto h = p->History(n.id);
  ASSERT_EQ(h->size(), 5u);
  EXPECT_EQ((*h)[0].author, "22");
  EXPECT_EQ((*h)[4].author, "18");
}

// ---- damage ----

TEST_F(NotepadTest, TornTailOfOwnLogIsCutAtOpen) {
  std::string frame;
  LogRecord r;
  r.type = RecordType::kTitle;
  r.title = "never written";
  AppendLogRecord(frame, EncodeRecord(r));
  std::string bad_crc = frame;
  bad_crc[5] ^= 1;
  for (std::string tail : {frame.substr(0, frame.size() / 2), std::string("\0\0\0", 3),
                           std::string("\x05\0\0\0garbage!"), bad_crc, frame.substr(0, 3)}) {
    store_ = storage::NewMemStore(&clock_);
    auto a = Make("a");
    NoteInfo n = CreateNote(*a, "T", "kept");
    ASSERT_TRUE(a->ApplyEdits(n.id, Ver(*a, n.id), E(4, 0, " too"), "ann").ok());
    a.reset();
    std::string log = LogOf(n.id, "a");
    uint64_t good = FileSize(*store_, log);
    {
      auto w = store_->OpenWrite(log, false);
      ASSERT_TRUE(w.ok());
      ASSERT_TRUE((*w)->Append(tail).ok());
      ASSERT_TRUE((*w)->Close().ok());
    }
    auto b = Make("b");  // another node does not misread it, and does not cut it
    EXPECT_EQ(Text(*b, n.id), "kept too");
    EXPECT_EQ(b->stats().torn_tails_cut, 0u);
    EXPECT_EQ(FileSize(*store_, log), good + tail.size());

    auto a2 = Make("a");
    EXPECT_EQ(a2->stats().torn_tails_cut, 1u);
    EXPECT_EQ(FileSize(*store_, log), good);
    EXPECT_EQ(Text(*a2, n.id), "kept too");
    EXPECT_EQ(a2->Get(n.id, nullptr)->title, "T");
    ASSERT_TRUE(a2->ApplyEdits(n.id, Ver(*a2, n.id), E(0, 0, "> "), "ann").ok());
    b->Poll();
    EXPECT_EQ(Text(*b, n.id), "> kept too");
    EXPECT_EQ(b->stats().bad_records, 0u);
  }
}

TEST_F(NotepadTest, TornHeaderOfOwnLogIsCut) {
  ASSERT_TRUE(store_->WriteAtomic(LogOf("half", "a"), "HN").ok());
  auto a = Make("a");
  EXPECT_EQ(a->stats().torn_tails_cut, 1u);
  EXPECT_EQ(FileSize(*store_, LogOf("half", "a")), 0u);
  EXPECT_TRUE(a->List("", true).empty());  // no create record: not a note (yet)
}

TEST_F(NotepadTest, TornTailInAnotherNodesLogIsPickedUpOnceComplete) {
  auto a = Make("a");
  auto b = Make("b");
  NoteInfo n = CreateNote(*a, "T", "base");
  b->Poll();
  ASSERT_TRUE(b->ApplyEdits(n.id, Ver(*b, n.id), E(4, 0, " one"), "bob").ok());
  a->Poll();
  ASSERT_TRUE(b->ApplyEdits(n.id, Ver(*b, n.id), E(8, 0, " two"), "bob").ok());
  b.reset();
  std::string log = LogOf(n.id, "b");
  std::string full = *store_->ReadAll(log, 1 << 20);
  // b is mid-append: every prefix of its last record.
  size_t before = full.size();
  {
    std::string node;
    size_t header = 0;
    ASSERT_EQ(ParseLogHeader(full, &node, &header), ParseStatus::kOk);
    LogScan s = ScanLogRecords(std::string_view(full).substr(header), 1 << 20);
    ASSERT_EQ(s.records.size(), 2u);
    before = header + (s.end - s.records[1].size() - kRecordHeaderBytes);
  }
  Recorder rec;
  a->SetListener(rec.Fn());
  for (size_t cut = before; cut < full.size(); ++cut) {
    ASSERT_TRUE(store_->WriteAtomic(log, full.substr(0, cut)).ok());
    EXPECT_EQ(a->Poll(), 0u) << cut;
    EXPECT_EQ(Text(*a, n.id), "base one");
  }
  EXPECT_TRUE(rec.Take().empty());
  ASSERT_TRUE(store_->WriteAtomic(log, full).ok());
  EXPECT_EQ(a->Poll(), 1u);
  EXPECT_EQ(Text(*a, n.id), "base one two");
  EXPECT_EQ(a->stats().bad_records, 0u);
  ExpectChangesReplay(*a, rec.Take());
}

TEST_F(NotepadTest, DamageBeforeGoodRecordsInAnotherNodesLogStopsThereReportedOnce) {
  auto a = Make("a");
  auto b = Make("b");
  NoteInfo n = CreateNote(*a, "T", "base");
  b->Poll();
  for (std::string w : {" one", " two", " three"}) {
    ASSERT_TRUE(b->ApplyEdits(n.id, Ver(*b, n.id), E(0, 0, w), "bob").ok());
  }
  b.reset();
  std::string log = LogOf(n.id, "b");
  std::string full = *store_->ReadAll(log, 1 << 20);
  std::string node;
  size_t header = 0;
  ASSERT_EQ(ParseLogHeader(full, &node, &header), ParseStatus::kOk);
  LogScan s = ScanLogRecords(std::string_view(full).substr(header), 1 << 20);
  ASSERT_EQ(s.records.size(), 3u);
  size_t second = static_cast<size_t>(s.records[1].data() - full.data());
  full[second + 2] ^= 0x20;  // inside the second record's payload
  ASSERT_TRUE(store_->WriteAtomic(log, full).ok());
  a->Poll();
  EXPECT_EQ(Text(*a, n.id), " onebase");
  EXPECT_EQ(a->stats().bad_records, 1u);
  a->Poll();
  a->PollNote(n.id);
  EXPECT_EQ(a->stats().bad_records, 1u);  // reported once
  auto c = Make("c");
  EXPECT_EQ(Text(*c, n.id), " onebase");
}

TEST_F(NotepadTest, DirectoriesThatAreNotNotesAreIgnored) {
  ASSERT_TRUE(store_->WriteAtomic("not.an.id/logs/a.log", "junk").ok());
  ASSERT_TRUE(store_->WriteAtomic("x/logs/a.log", "junk").ok());  // a bad header
  ASSERT_TRUE(store_->WriteAtomic("y/logs/bad name.log", "junk").ok());
  auto b = Make("b");
  EXPECT_EQ(b->Poll(), 0u);
  EXPECT_TRUE(b->List("", true).empty());
  EXPECT_EQ(b->stats().bad_records, 1u);
}

// ---- fault injection by countdown (STYLE.md #10) ----

struct FaultCase {
  const char* name;
  bool snapshots;  // a snapshot is due after the edit: WriteAtomic joins the countdown
  bool restarted;  // the writer is not open yet: OpenWrite joins the countdown
};

class FaultTest : public NotepadTest, public ::testing::WithParamInterface<FaultCase> {};

TEST_P(FaultTest, ApplyEditsLeavesTheBeforeOrTheAfterStateEverywhere) {
  NotepadOptions o;
  o.snapshot_after_bytes = GetParam().snapshots ? 1 : 1ull << 40;
  NotepadOptions verify_opt;
  verify_opt.snapshot_after_bytes = 1ull << 40;
  const std::string before = "before", after = "before and after";
  bool covered = false, failed_before = false, failed_after = false;
  for (int k = 0; k < 20 && !covered; ++k) {
    auto base = storage::NewMemStore(&clock_);
    auto faulty = storage::NewFaultyStore(base.get());
    auto a = Make("a", o, faulty.get());
    NoteInfo n = CreateNote(*a, "T", before);
    if (GetParam().restarted) a = Make("a", o, faulty.get());
    Recorder rec;
    a->SetListener(rec.Fn());
    Version v = Ver(*a, n.id);

    faulty->Reset();
    faulty->FailAfter(k, storage::errc::io_error);
    auto r = a->ApplyEdits(n.id, v, E(6, 0, " and after"), "ann");
    int calls = faulty->mutating_calls();
    faulty->Reset();
    covered = r.ok() && k >= calls;

    std::string now = Text(*a, n.id);
    EXPECT_TRUE(now == before || now == after) << k << ": " << now;
    if (r.ok()) {
      EXPECT_EQ(now, after) << k;
    } else {
      EXPECT_EQ(r.code(), storage::errc::io_error) << k;
      (now == before ? failed_before : failed_after) = true;
    }
    // Storage agrees with memory.
    auto fresh = Make("verify", verify_opt, base.get());
    EXPECT_EQ(Text(*fresh, n.id), now) << k;
    EXPECT_EQ(Ver(*fresh, n.id), Ver(*a, n.id)) << k;
    // Listeners saw exactly the change that happened.
    auto changes = rec.Take();
    ExpectChangesReplay(*a, changes);
    EXPECT_EQ(changes.empty(), now == before) << k;

    // The next edit works, and everyone agrees again.
    auto next = a->ApplyEdits(n.id, Ver(*a, n.id), E(0, 0, "> "), "ann");
    ASSERT_TRUE(next.ok()) << k << ": " << next.error().message;
    fresh->Poll();
    EXPECT_EQ(Text(*fresh, n.id), "> " + now) << k;
    auto restarted = Make("a", verify_opt, base.get());
    EXPECT_EQ(Text(*restarted, n.id), "> " + now) << k;
    EXPECT_EQ(Ver(*restarted, n.id), Ver(*a, n.id)) << k;
  }
  EXPECT_TRUE(covered) << "the edit never succeeded";
  // Both outcomes of a failure happened: the append refused (before), and
  // the sync refused after the bytes were written (after: storage has it).
  EXPECT_TRUE(failed_before);
  EXPECT_TRUE(failed_after);
}

INSTANTIATE_TEST_SUITE_P(Countdown, FaultTest,
                         ::testing::Values(FaultCase{"open", false, false},
                                           FaultCase{"snapshot", true, false},
                                           FaultCase{"restarted", false, true},
                                           FaultCase{"restarted_snapshot", true, true}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST_F(NotepadTest, CreateRenameDeleteUnderFaultsLeaveBeforeOrAfter) {
  NotepadOptions o;
  for (int op = 0; op < 3; ++op) {
    bool covered = false;
    for (int k = 0; k < 20 && !covered; ++k) {
      auto base = storage::NewMemStore(&clock_);
      auto faulty = storage::NewFaultyStore(base.get());
      auto a = Make("a", o, faulty.get());
      NoteInfo n = CreateNote(*a, "T", "text");
      faulty->Reset();
      faulty->FailAfter(k, storage::errc::no_space);
      bool ok = false;
      if (op == 0) ok = a->Create("second", "body", "ann").ok();
      if (op == 1) ok = a->Rename(n.id, "renamed", "ann").ok();
      if (op == 2) ok = a->Delete(n.id, "ann").ok();
      int calls = faulty->mutating_calls();
      faulty->Reset();
      covered = ok && k >= calls;
      a->Poll();  // a create whose cleanup failed shows up as another node's would
      auto fresh = Make("verify", o, base.get());
      auto mine = a->List("", true), theirs = fresh->List("", true);
      ASSERT_EQ(mine.size(), theirs.size()) << op << "/" << k;
      for (size_t i = 0; i < mine.size(); ++i) {
        EXPECT_EQ(mine[i].id, theirs[i].id);
        EXPECT_EQ(mine[i].title, theirs[i].title) << op << "/" << k;
        EXPECT_EQ(mine[i].deleted, theirs[i].deleted) << op << "/" << k;
        EXPECT_EQ(mine[i].version, theirs[i].version);
      }
      if (ok && op == 0) {
        EXPECT_EQ(mine.size(), 2u);
      }
      if (ok && op == 1) {
        EXPECT_EQ(mine[0].title, "renamed");
      }
      if (ok && op == 2) {
        EXPECT_TRUE(mine[0].deleted);
      }
    }
    EXPECT_TRUE(covered) << op;
  }
}

// ---- concurrency and real files ----

TEST_F(NotepadTest, ThreadsOnTwoNodesConverge) {
  auto a = Make("a");
  auto b = Make("b");
  NoteInfo n = CreateNote(*a, "T", "0123456789");
  b->Poll();
  std::atomic<bool> done{false};
  auto writer = [&](Notepad* p, int seed) {
    std::mt19937 rng(static_cast<unsigned>(seed));
    for (int i = 0; i < 40; ++i) {
      std::string t;
      auto info = p->Get(n.id, &t);
      ASSERT_TRUE(info.ok());
      int64_t pos = static_cast<int64_t>(rng() % (info->length + 1));
      int64_t del = pos < static_cast<int64_t>(info->length) ? static_cast<int64_t>(rng() % 2) : 0;
      auto r = p->ApplyEdits(n.id, *Version::Decode(info->version),
                             E(pos, del, std::string(1, static_cast<char>('a' + seed))), "u");
      ASSERT_TRUE(r.ok()) << r.error().message;
    }
  };
  auto poller = [&](Notepad* p) {
    while (!done) p->Poll();
  };
  std::vector<std::thread> threads;
  threads.emplace_back(writer, a.get(), 0);
  threads.emplace_back(writer, a.get(), 1);
  threads.emplace_back(writer, b.get(), 2);
  threads.emplace_back(writer, b.get(), 3);
  std::thread pa(poller, a.get()), pb(poller, b.get());
  for (auto& t : threads) t.join();
  done = true;
  pa.join();
  pb.join();
  a->Poll();
  b->Poll();
  EXPECT_EQ(Text(*a, n.id), Text(*b, n.id));
  EXPECT_EQ(Ver(*a, n.id), Ver(*b, n.id));
  auto c = Make("c");
  EXPECT_EQ(Text(*c, n.id), Text(*a, n.id));
  EXPECT_EQ(a->History(n.id)->size(), 161u);
}

class TempDir {
 public:
  TempDir() : path_(std::filesystem::temp_directory_path() / ("notepad_test_" + RandomHex(8))) {}
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

TEST_F(NotepadTest, EditingTraceThroughTheNotepadMatchesABareDoc) {
  auto t = LoadTrace(std::string(HUB_NOTES_TRACES) + "/sveltecomponent.json.gz");
  ASSERT_TRUE(t.ok()) << t.error().message;
  TempDir dir;
  auto local = storage::OpenLocalStore(dir.str());
  NotepadOptions o;
  o.snapshot_after_bytes = 32 << 10;
  auto a = Make("a", o, local.get());
  NoteInfo n = CreateNote(*a, "trace", t->start_content);
  Doc bare(DocOptions{.agent = "bare"});
  if (!t->start_content.empty()) {
    ASSERT_TRUE(bare.Apply(std::vector<Edit>{{0, 0, t->start_content}}).ok());
  }
  std::vector<Edit> all;
  for (const auto& txn : t->txns) all.insert(all.end(), txn.begin(), txn.end());
#if defined(__SANITIZE_ADDRESS__)
  all.resize(std::min<size_t>(all.size(), 5000));
#endif
  Version v = *Version::Decode(n.version);
  for (size_t i = 0; i < all.size(); i += 100) {
    std::vector<Edit> batch(all.begin() + static_cast<ptrdiff_t>(i),
                            all.begin() + static_cast<ptrdiff_t>(std::min(all.size(), i + 100)));
    auto r = a->ApplyEdits(n.id, v, batch, "trace", /*require_current=*/true);
    ASSERT_TRUE(r.ok()) << "batch " << i / 100 << ": " << r.error().message;
    v = r->version;
    ASSERT_TRUE(bare.Apply(batch).ok());
  }
  EXPECT_EQ(Text(*a, n.id), bare.Text());
  if (all.size() == t->edits()) {
    EXPECT_EQ(bare.Text(), t->end_content);
  }
  EXPECT_GT(a->stats().snapshots_written, 0u);
  auto b = Make("b", o, local.get());
  EXPECT_EQ(Text(*b, n.id), bare.Text());
  a.reset();
  auto a2 = Make("a", o, local.get());
  EXPECT_EQ(Text(*a2, n.id), bare.Text());
}

}  // namespace
}  // namespace hub::notes
