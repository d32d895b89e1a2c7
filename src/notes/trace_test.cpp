// Replays the editing traces of ../shared/data/editing-traces through the
// CRDT and checks the final text, then the same document through every
// encoding: ops to a fresh replica, a snapshot, and text at old versions.
#include "notes/trace.h"

#include <gtest/gtest.h>

#include <chrono>

namespace hub::notes {
namespace {

struct Case {
  const char* name;
  bool heavy;  // skipped under sanitizers (slow there, covered by the others)
};

class TraceReplay : public ::testing::TestWithParam<Case> {};

TEST_P(TraceReplay, EndsWithEndContentThroughEveryEncoding) {
#if defined(__SANITIZE_ADDRESS__)
  if (GetParam().heavy) GTEST_SKIP() << "large trace skipped under sanitizers";
#endif
  auto t = LoadTrace(std::string(HUB_NOTES_TRACES) + "/" + GetParam().name + ".json.gz");
  ASSERT_TRUE(t.ok()) << t.error().message;
  Doc doc(DocOptions{.agent = "trace"});
  if (!t->start_content.empty()) {
    ASSERT_TRUE(doc.Apply(std::vector<Edit>{{0, 0, t->start_content}}).ok());
  }
  std::vector<Version> checkpoints;
  std::vector<std::string> texts;
  size_t i = 0;
  for (const auto& txn : t->txns) {
    auto r = doc.Apply(txn);
    ASSERT_TRUE(r.ok()) << "txn " << i << ": " << r.error().message;
    if (++i % 5000 == 0) {
      checkpoints.push_back(doc.version());
      texts.push_back(doc.Text());
    }
  }
  ASSERT_EQ(doc.Text(), t->end_content);
  EXPECT_EQ(doc.Size(), t->end_content.size());

  // The whole history to a fresh replica.
  Doc other(DocOptions{.agent = "other"});
  ASSERT_TRUE(other.ApplyRemote(doc.EncodeOps(Version{})).ok());
  EXPECT_EQ(other.Text(), t->end_content);
  EXPECT_EQ(other.version(), doc.version());

  // A snapshot.
  auto loaded = Doc::Load(doc.Save());
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_EQ(loaded->Text(), t->end_content);
  EXPECT_EQ(loaded->Length(), doc.Length());

  // Old versions are still readable (a few, to keep the test fast).
  for (size_t c = 0; c < checkpoints.size(); c += std::max<size_t>(1, checkpoints.size() / 4)) {
    auto old = doc.TextAt(checkpoints[c]);
    ASSERT_TRUE(old.ok());
    EXPECT_EQ(*old, texts[c]) << "checkpoint " << c;
  }
}

INSTANTIATE_TEST_SUITE_P(Traces, TraceReplay,
                         ::testing::Values(Case{"sveltecomponent", false}, Case{"seph-blog1", true},
                                           Case{"automerge-paper", true}),
                         [](const auto& info) {
                           std::string n = info.param.name;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

}  // namespace
}  // namespace hub::notes
