#include "notes/doc.h"

#include <gtest/gtest.h>

#include "notes/detail/test_text.h"

#include <algorithm>
#include <map>
#include <random>
#include <set>

namespace hub::notes {
namespace {

using testing::Splice;
using testing::U32;
using testing::Utf8;

std::vector<Edit> E(int64_t pos, int64_t del, std::string ins) { return {Edit{pos, del, std::move(ins)}}; }

// Sends everything `from` has that `to` lacks.
void Sync(const Doc& from, Doc& to) { ASSERT_TRUE(to.ApplyRemote(from.EncodeOps(to.version())).ok()); }

TEST(Doc, InsertDeleteText) {
  Doc d;
  ASSERT_TRUE(d.Apply(E(0, 0, "hello world")).ok());
  ASSERT_TRUE(d.Apply(E(5, 6, "")).ok());
  ASSERT_TRUE(d.Apply(E(0, 0, "oh, ")).ok());
  EXPECT_EQ(d.Text(), "oh, hello");
  EXPECT_EQ(d.Length(), 9u);
  EXPECT_EQ(d.Size(), 9u);
}

TEST(Doc, PositionsAreCodePoints) {
  Doc d;
  ASSERT_TRUE(d.Apply(E(0, 0, "h\xC3\xA9llo \xF0\x9F\x98\x80!")).ok());  // "héllo 😀!"
  EXPECT_EQ(d.Length(), 8u);
  EXPECT_EQ(d.Size(), 12u);
  ASSERT_TRUE(d.Apply(E(6, 1, "\xE4\xB8\x96")).ok());  // replace the emoji by 世
  ASSERT_TRUE(d.Apply(E(1, 1, "e")).ok());
  EXPECT_EQ(d.Text(), "hello \xE4\xB8\x96!");
}

TEST(Doc, MultipleEditsInOneRequestAreSequential) {
  Doc d;
  ASSERT_TRUE(d.Apply(E(0, 0, "abcdef")).ok());
  // Like the traces: each edit is relative to the result of the previous ones.
  std::vector<Edit> edits{{1, 2, "X"}, {0, 0, ">"}, {5, 1, ""}, {5, 0, "<"}};
  ASSERT_TRUE(d.Apply(edits).ok());
  EXPECT_EQ(d.Text(), ">aXde<");
}

TEST(Doc, RandomLocalEditsMatchSplice) {
  for (uint32_t seed = 1; seed <= 60; ++seed) {
    std::mt19937 rng(seed);
    Doc d;
    std::u32string model;
    for (int step = 0; step < 400; ++step) {
      int64_t len = static_cast<int64_t>(model.size());
      int64_t pos = std::uniform_int_distribution<int64_t>(0, len)(rng);
      int64_t del = rng() % 3 == 0 ? std::uniform_int_distribution<int64_t>(0, std::min<int64_t>(len - pos, 40))(rng) : 0;
      std::u32string ins(rng() % 5, static_cast<char32_t>(rng() % 2 ? 'a' + rng() % 26 : 0x400 + rng() % 300));
      model.replace(static_cast<size_t>(pos), static_cast<size_t>(del), ins);
      ASSERT_TRUE(d.Apply(E(pos, del, Utf8(ins))).ok());
      ASSERT_EQ(d.Text(), Utf8(model)) << "seed " << seed << " step " << step;
      ASSERT_EQ(d.Length(), model.size());
    }
  }
}

TEST(Doc, LongUnicodeInsertSplitsIntoRunsAndSurvivesEdits) {
  Doc d;
  std::u32string big;
  for (int i = 0; i < 5000; ++i) big.push_back(static_cast<char32_t>(0x4E00 + i));
  ASSERT_TRUE(d.Apply(E(0, 0, Utf8(big))).ok());
  ASSERT_TRUE(d.Apply(E(2500, 10, "x")).ok());
  big.replace(2500, 10, U"x");
  EXPECT_EQ(d.Text(), Utf8(big));
  Doc other(DocOptions{.agent = "b"});
  Sync(d, other);
  EXPECT_EQ(other.Text(), Utf8(big));
}

// ---- concurrency ----

// Two replicas type "hello" and "world" one key at a time at the same place.
TEST(Concurrency, SamePlaceTypingDoesNotInterleave) {
  for (int where : {0, 1, 2}) {
    Doc a(DocOptions{.agent = "alice"}), b(DocOptions{.agent = "bob"});
    ASSERT_TRUE(a.Apply(E(0, 0, "[]")).ok());
    Sync(a, b);
    for (int i = 0; i < 5; ++i) {
      ASSERT_TRUE(a.Apply(E(where + i, 0, std::string(1, "hello"[i]))).ok());
      ASSERT_TRUE(b.Apply(E(where + i, 0, std::string(1, "world"[i]))).ok());
    }
    Sync(a, b);
    Sync(b, a);
    EXPECT_EQ(a.Text(), b.Text());
    std::string t = a.Text();
    t.erase(std::remove_if(t.begin(), t.end(), [](char c) { return c == '[' || c == ']'; }), t.end());
    EXPECT_TRUE(t == "helloworld" || t == "worldhello") << a.Text();
  }
}

// Typing backwards (each key at the same position) must not interleave either.
TEST(Concurrency, SamePlaceBackwardTypingDoesNotInterleave) {
  Doc a(DocOptions{.agent = "alice"}), b(DocOptions{.agent = "bob"});
  for (int i = 4; i >= 0; --i) {
    ASSERT_TRUE(a.Apply(E(0, 0, std::string(1, "hello"[i]))).ok());
    ASSERT_TRUE(b.Apply(E(0, 0, std::string(1, "world"[i]))).ok());
  }
  Sync(a, b);
  Sync(b, a);
  EXPECT_EQ(a.Text(), b.Text());
  EXPECT_TRUE(a.Text() == "helloworld" || a.Text() == "worldhello") << a.Text();
}

// The HTTP case: two clients read version V of one document and both send edits against V.
TEST(Concurrency, EditsAgainstAnOldBaseVersionMergeAsExpected) {
  Doc d(DocOptions{.agent = "node1"});
  auto v = d.Apply(d.version(), E(0, 0, "The quick fox"));
  ASSERT_TRUE(v.ok());
  Version base = *v;
  ASSERT_TRUE(d.Apply(base, E(10, 0, "brown ")).ok());  // client A
  EXPECT_EQ(d.Text(), "The quick brown fox");
  ASSERT_TRUE(d.Apply(base, E(4, 6, "")).ok());  // client B, still at V: deletes "quick "
  EXPECT_EQ(d.Text(), "The brown fox");
  // Client C, also at V, inserts at the same place as A: not interleaved.
  auto r = d.Apply(base, E(10, 0, "red "));
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(d.Text() == "The brown red fox" || d.Text() == "The red brown fox") << d.Text();
  // A request of several edits against V: each relative to the result of the previous ones.
  std::vector<Edit> edits{{0, 3, "A"}, {1, 0, "!"}, {12, 0, "."}};  // V: "The quick fox"
  ASSERT_TRUE(d.Apply(base, edits).ok());
  EXPECT_TRUE(d.Text() == "A! brown red fox." || d.Text() == "A! red brown fox.") << d.Text();
  EXPECT_TRUE(r->Includes(base));
  // The old states stay readable.
  EXPECT_EQ(*d.TextAt(base), "The quick fox");
  EXPECT_EQ(*d.TextAt(Version{}), "");
}

TEST(Concurrency, OldBaseDeleteOfTextDeletedSinceIsHarmless) {
  Doc d(DocOptions{.agent = "n"});
  Version v = *d.Apply(d.version(), E(0, 0, "abcdef"));
  ASSERT_TRUE(d.Apply(E(1, 3, "")).ok());          // "aef"
  ASSERT_TRUE(d.Apply(v, E(2, 3, "XY")).ok());     // at V "abcdef": delete "cde", insert XY
  EXPECT_EQ(d.Text(), "aXYf");
  Doc other(DocOptions{.agent = "o"});
  Sync(d, other);
  EXPECT_EQ(other.Text(), "aXYf");
}

TEST(Concurrency, RemoteOpsOutOfOrderAndDuplicatedWaitForDependencies) {
  Doc a(DocOptions{.agent = "a"});
  std::vector<std::string> msgs;
  Version prev;
  for (int i = 0; i < 5; ++i) {
    auto v = a.Apply(a.version(), E(0, 0, std::to_string(i)));
    msgs.push_back(a.EncodeOps(prev));
    prev = *v;
  }
  Doc b(DocOptions{.agent = "b"});
  for (int i = 4; i >= 0; --i) ASSERT_TRUE(b.ApplyRemote(msgs[static_cast<size_t>(i)]).ok());
  EXPECT_EQ(b.pending(), 0u);
  ASSERT_TRUE(b.ApplyRemote(msgs[2]).ok());
  EXPECT_EQ(b.Text(), a.Text());
  EXPECT_EQ(b.Text(), "43210");
}

// Random concurrent sessions: replicas edit (at their current version or at an
// older one they saw), messages are delayed, reordered and duplicated. At the
// end every replica has the same text, which holds every inserted character
// that nobody deleted, once, and no other.
TEST(Properties, RandomConcurrentSessionsConverge) {
  for (uint32_t seed = 1; seed <= 150; ++seed) {
    std::mt19937 rng(seed);
    const int n = 3 + static_cast<int>(seed % 3);
    std::vector<Doc> docs;
    std::vector<std::vector<Version>> seen(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      docs.emplace_back(DocOptions{.agent = "replica-" + std::to_string(i)});
      seen[static_cast<size_t>(i)].push_back(Version{});
    }
    struct Msg {
      int to;
      std::string bytes;
    };
    std::vector<Msg> net;
    std::set<char32_t> inserted, deleted;
    char32_t next_char = 0x100;
    for (int step = 0; step < 120; ++step) {
      int r = static_cast<int>(rng() % static_cast<uint32_t>(n));
      Doc& d = docs[static_cast<size_t>(r)];
      auto& hist = seen[static_cast<size_t>(r)];
      uint32_t action = rng() % 10;
      if (action < 5) {
        // A request of 1..3 edits, usually at the current version, sometimes at an older one.
        Version before = d.version();
        Version base = rng() % 4 == 0 ? hist[rng() % hist.size()] : before;
        std::u32string view = U32(*d.TextAt(base));
        std::vector<Edit> edits;
        for (int k = 1 + static_cast<int>(rng() % 3); k > 0; --k) {
          size_t pos = rng() % (view.size() + 1);
          size_t del = rng() % 3 == 0 ? std::min<size_t>(view.size() - pos, rng() % 4) : 0;
          for (size_t j = 0; j < del; ++j) deleted.insert(view[pos + j]);
          std::u32string ins;
          for (uint32_t j = rng() % 5; j > 0; --j) {
            ins.push_back(next_char);
            inserted.insert(next_char++);
          }
          view.replace(pos, del, ins);
          edits.push_back(Edit{static_cast<int64_t>(pos), static_cast<int64_t>(del), Utf8(ins)});
        }
        auto v = d.Apply(base, edits);
        ASSERT_TRUE(v.ok()) << v.error().message;
        // The state the client meant: its base plus its own edits, exactly.
        std::string agent = "replica-" + std::to_string(r);
        if (base.Count(agent) == before.Count(agent)) {
          Version meant = base;
          meant.Set(agent, v->Count(agent));
          auto t = d.TextAt(meant);
          ASSERT_TRUE(t.ok()) << t.error().message;
          ASSERT_EQ(*t, Utf8(view)) << "seed " << seed << " step " << step;
        }
        hist.push_back(*v);
        std::string ops = d.EncodeOps(before);
        for (int to = 0; to < n; ++to) {
          if (to != r) net.push_back(Msg{to, ops});
        }
      } else if (action < 9 && !net.empty()) {
        // Deliver a random message; sometimes keep it to deliver again.
        size_t i = rng() % net.size();
        Msg m = net[i];
        if (rng() % 5) net.erase(net.begin() + static_cast<std::ptrdiff_t>(i));
        Doc& to = docs[static_cast<size_t>(m.to)];
        auto& to_hist = seen[static_cast<size_t>(m.to)];
        ASSERT_TRUE(to.ApplyRemote(m.bytes).ok());
        to_hist.push_back(to.version());
        // A viewer at any earlier state catches up with ChangesSince.
        const Version& since = to_hist[rng() % to_hist.size()];
        auto changes = to.ChangesSince(since);
        ASSERT_TRUE(changes.ok()) << changes.error().message;
        ASSERT_EQ(Splice(*to.TextAt(since), *changes), to.Text()) << "seed " << seed << " step " << step;
      } else {
        // Anti-entropy from a random peer, computed against a stale version.
        int from = static_cast<int>(rng() % static_cast<uint32_t>(n));
        net.push_back(Msg{r, docs[static_cast<size_t>(from)].EncodeOps(hist[rng() % hist.size()])});
      }
    }
    std::shuffle(net.begin(), net.end(), rng);
    for (const Msg& m : net) ASSERT_TRUE(docs[static_cast<size_t>(m.to)].ApplyRemote(m.bytes).ok());
    for (int i = 0; i < n; ++i) {
      for (int j = 0; j < n; ++j) Sync(docs[static_cast<size_t>(i)], docs[static_cast<size_t>(j)]);
    }
    std::u32string expect_chars;
    for (char32_t c : inserted) {
      if (!deleted.count(c)) expect_chars.push_back(c);
    }
    for (int i = 0; i < n; ++i) {
      const Doc& d = docs[static_cast<size_t>(i)];
      ASSERT_EQ(d.pending(), 0u);
      ASSERT_EQ(d.Text(), docs[0].Text()) << "seed " << seed << " replica " << i;
      ASSERT_EQ(d.version(), docs[0].version());
    }
    std::u32string got = U32(docs[0].Text());
    EXPECT_EQ(got.size(), docs[0].Length());
    std::sort(got.begin(), got.end());
    ASSERT_EQ(got, expect_chars) << "seed " << seed;
    // A snapshot of the merged document reloads to the same text.
    auto loaded = Doc::Load(docs[1].Save(), DocOptions{.agent = "replica-1"});
    ASSERT_TRUE(loaded.ok());
    EXPECT_EQ(loaded->Text(), docs[0].Text());
  }
}

TEST(Doc, ChangesSinceAreMinimalAndOrdered) {
  Doc d(DocOptions{.agent = "a"});
  ASSERT_TRUE(d.Apply(E(0, 0, "hello big world")).ok());
  Version v1 = d.version();
  ASSERT_TRUE(d.Apply(std::vector<Edit>{{6, 4, ""}, {0, 0, "¡"}, {12, 0, "!"}}).ok());
  EXPECT_EQ(d.Text(), "¡hello world!");
  auto c = d.ChangesSince(v1);
  ASSERT_TRUE(c.ok());
  ASSERT_EQ(c->size(), 3u);
  EXPECT_EQ((*c)[0].position, 0);
  EXPECT_EQ((*c)[0].insert, "¡");
  EXPECT_EQ((*c)[1].position, 7);
  EXPECT_EQ((*c)[1].delete_count, 4);
  EXPECT_EQ((*c)[2].position, 12);
  EXPECT_EQ(Splice("hello big world", *c), d.Text());
  EXPECT_TRUE(d.ChangesSince(d.version())->empty());
  Version unknown;
  unknown.Set("zz", 3);
  EXPECT_EQ(d.ChangesSince(unknown).error().code, make_error_code(errc::unknown_version));
}

TEST(Doc, ApplyAsAnotherAgentGivesThatWriterItsOwnView) {
  Doc d(DocOptions{.agent = "node"});
  ASSERT_TRUE(d.Apply(E(0, 0, "abc")).ok());
  Version base = d.version();
  auto v = d.Apply(base, E(3, 0, "X"), "node~s1");
  ASSERT_TRUE(v.ok());
  ASSERT_TRUE(d.Apply(E(0, 0, "1")).ok());  // someone else, as the node
  // The session's view: its base plus its own edits, without the node's later edit.
  Version mine = base;
  mine.Set("node~s1", v->Count("node~s1"));
  EXPECT_EQ(*d.TextAt(mine), "abcX");
  auto v2 = d.Apply(mine, E(4, 0, "Y"), "node~s1");
  ASSERT_TRUE(v2.ok());
  EXPECT_EQ(d.Text(), "1abcXY");
  EXPECT_EQ(d.Apply(mine, E(0, 0, "Z"), "").error().code, make_error_code(errc::bad_agent));
  EXPECT_EQ(d.Text(), "1abcXY");
  // The other agent's operations travel like any other.
  Doc other(DocOptions{.agent = "elsewhere"});
  ASSERT_TRUE(other.ApplyRemote(d.EncodeOps(Version{})).ok());
  EXPECT_EQ(other.Text(), "1abcXY");
}

// ---- bad input ----

TEST(BadInput, EditsAreValidatedAndTheDocumentIsUnchanged) {
  Doc d;
  Version v = *d.Apply(d.version(), E(0, 0, "h\xC3\xA9llo"));  // 5 code points, 6 bytes
  struct Bad {
    std::vector<Edit> edits;
    errc code;
  };
  std::vector<Bad> cases{
      {E(-1, 0, "x"), errc::bad_position},
      {E(6, 0, "x"), errc::bad_position},
      {E(0, -1, ""), errc::bad_delete},
      {E(3, 3, ""), errc::bad_delete},
      {E(0, 6, ""), errc::bad_delete},
      {E(0, 0, "\xC0\xAF"), errc::bad_utf8},          // overlong
      {E(0, 0, "\xED\xA0\x80"), errc::bad_utf8},      // lone surrogate U+D800
      {E(0, 0, "\xE4\xB8"), errc::bad_utf8},          // truncated
      {E(0, 0, "\xF4\x90\x80\x80"), errc::bad_utf8},  // above U+10FFFF
      {E(0, 0, "\x80"), errc::bad_utf8},              // stray continuation
      {E(0, 0, "\xFF"), errc::bad_utf8},
      // An error in a later edit refuses the whole request (the first edit is valid).
      {std::vector<Edit>{{0, 0, "ok"}, {99, 0, "x"}}, errc::bad_position},
      {std::vector<Edit>{{0, 5, ""}, {0, 1, ""}}, errc::bad_delete},
  };
  for (const Bad& b : cases) {
    auto r = d.Apply(b.edits);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.code(), make_error_code(b.code)) << r.error().message;
    EXPECT_FALSE(r.error().message.empty());
    EXPECT_EQ(d.Text(), "h\xC3\xA9llo");
    EXPECT_EQ(d.version(), v);
  }
}

TEST(BadInput, TooLargeIsRefusedBeforeAnythingChanges) {
  Doc d(DocOptions{.max_size_bytes = 10});
  ASSERT_TRUE(d.Apply(E(0, 0, "0123456789")).ok());
  auto r = d.Apply(E(0, 0, "x"));
  EXPECT_EQ(r.code(), make_error_code(errc::too_large));
  EXPECT_EQ(d.Text(), "0123456789");
}

TEST(BadInput, VersionsAreValidated) {
  Doc a(DocOptions{.agent = "a"}), b(DocOptions{.agent = "b"});
  ASSERT_TRUE(a.Apply(E(0, 0, "xyz")).ok());
  Sync(a, b);
  Version vb = *b.Apply(b.version(), E(3, 0, "!"));
  // Malformed tokens.
  for (const std::string& bad : std::vector<std::string>{"!", "A", "AAAA", "____", "%%%%", std::string(100000, 'A')}) {
    EXPECT_EQ(Version::Decode(bad).code(), make_error_code(errc::bad_version)) << bad;
  }
  EXPECT_TRUE(Version::Decode("").ok());
  auto round = Version::Decode(vb.Encode());
  ASSERT_TRUE(round.ok());
  EXPECT_EQ(*round, vb);
  // A version this document does not have.
  EXPECT_EQ(a.Apply(vb, E(0, 0, "x")).code(), make_error_code(errc::unknown_version));
  Version future;
  future.Set("a", 99);
  EXPECT_EQ(a.Apply(future, E(0, 0, "x")).code(), make_error_code(errc::unknown_version));
  // Not causally closed: b's edit without the text it was made on.
  Version open;
  open.Set("b", 1);
  EXPECT_EQ(b.Apply(open, E(0, 0, "x")).code(), make_error_code(errc::bad_version));
  EXPECT_EQ(b.TextAt(open).code(), make_error_code(errc::bad_version));
  EXPECT_EQ(b.Text(), "xyz!");
}

TEST(BadInput, RandomBytesToEveryDecoder) {
  Doc base(DocOptions{.agent = "a"});
  ASSERT_TRUE(base.Apply(E(0, 0, "hello w\xC3\xB6rld")).ok());
  ASSERT_TRUE(base.Apply(E(3, 2, "p")).ok());
  const std::string ops = base.EncodeOps(Version{});
  const std::string snap = base.Save();
  const std::string token = base.version().Encode();
  std::mt19937 rng(7);
  auto mutate = [&](std::string s) {
    switch (rng() % 4) {
      case 0: if (!s.empty()) s.resize(rng() % s.size()); break;
      case 1: for (int i = 0; i < 3 && !s.empty(); ++i) s[rng() % s.size()] = static_cast<char>(rng()); break;
      case 2: if (!s.empty()) s.insert(rng() % s.size(), 1, static_cast<char>(rng())); break;
      default: {
        s.clear();
        for (uint32_t i = rng() % 64; i > 0; --i) s.push_back(static_cast<char>(rng()));
      }
    }
    return s;
  };
  for (int i = 0; i < 3000; ++i) {
    (void)Version::Decode(mutate(token));
    auto l = Doc::Load(mutate(snap));
    if (l.ok()) {
      EXPECT_EQ(l->Text().size(), l->Size());
    }
    Doc d(DocOptions{.agent = "b"});
    std::string m = mutate(ops);
    if (rng() % 2) m.replace(0, std::min<size_t>(4, m.size()), "HNO\x01");
    auto r = d.ApplyRemote(m);
    if (!r.ok()) {
      EXPECT_FALSE(r.error().message.empty());
    }
    // A good message after a bad one still works (mutated text with valid ids
    // is accepted as what that agent wrote: integrity is the transport's job).
    EXPECT_TRUE(d.ApplyRemote(ops).ok() || d.pending() > 0 || !r.ok());
    EXPECT_EQ(U32(d.Text()).size(), d.Length());
    EXPECT_EQ(d.Text().size(), d.Size());
  }
  // Truncations and garbage are refused with a reason, and change nothing.
  Doc d(DocOptions{.agent = "c"});
  for (size_t n = 0; n < ops.size(); ++n) {
    auto r = d.ApplyRemote(ops.substr(0, n));
    EXPECT_EQ(r.code(), make_error_code(errc::bad_encoding)) << n;
    EXPECT_EQ(d.Text(), "");
  }
  EXPECT_EQ(Doc::Load("").code(), make_error_code(errc::bad_encoding));
  EXPECT_EQ(Doc::Load(ops).code(), make_error_code(errc::bad_encoding));  // ops are not a snapshot
}

TEST(BadInput, PendingBufferIsBounded) {
  Doc a(DocOptions{.agent = "a"});
  std::vector<std::string> msgs;
  Version prev;
  for (int i = 0; i < 10; ++i) {
    auto v = a.Apply(a.version(), E(0, 0, "x"));
    msgs.push_back(a.EncodeOps(prev));
    prev = *v;
  }
  Doc b(DocOptions{.agent = "b", .max_pending_ops = 3});
  for (int i = 9; i >= 1; --i) (void)b.ApplyRemote(msgs[static_cast<size_t>(i)]);
  EXPECT_LE(b.pending(), 3u);
  EXPECT_EQ(b.ApplyRemote(msgs[5]).code(), make_error_code(errc::too_many_pending));
  Sync(a, b);  // catching up from the sender's full history always works
  EXPECT_EQ(b.Text(), a.Text());
}

TEST(BadInput, AgentNamesAreChecked) {
  EXPECT_THROW(Doc(DocOptions{.agent = ""}), std::invalid_argument);
  EXPECT_EQ(Doc::Load(Doc().Save(), DocOptions{.agent = std::string(65, 'a')}).code(),
            make_error_code(errc::bad_agent));
}

}  // namespace
}  // namespace hub::notes
