// notes_bench — replays editing traces through the notes CRDT, one edit per
// transaction, and measures replay time, live heap of the document, encoded
// size and load time; then builds a ~100 MB note and times loading it.
// Prints one JSON object per measurement (bench/notes/run.sh reads them).
//
//   notes_bench [--traces DIR] [--trace NAME]... [--big-mb N] [--rounds N]
#include <malloc.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "notes/doc.h"
#include "notes/trace.h"

using hub::notes::Doc;
using hub::notes::DocOptions;
using hub::notes::Edit;
using Clock = std::chrono::steady_clock;

namespace {

double Ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}
size_t LiveHeap() { return mallinfo2().uordblks + mallinfo2().hblkhd; }
long MaxRssKb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

int ReplayTrace(const std::string& dir, const std::string& name, int rounds) {
  auto t = hub::notes::LoadTrace(dir + "/" + name + ".json.gz");
  if (!t.ok()) {
    std::fprintf(stderr, "%s\n", t.error().message.c_str());
    return 1;
  }
  std::vector<double> replay, load;
  size_t heap = 0, encoded = 0, runs = 0, op_runs = 0;
  for (int r = 0; r < rounds; ++r) {
    malloc_trim(0);
    size_t heap0 = LiveHeap();
    auto t0 = Clock::now();
    Doc doc(DocOptions{.agent = "bench"});
    for (const auto& txn : t->txns) {
      for (const Edit& e : txn) {
        if (!doc.Apply(std::span<const Edit>(&e, 1)).ok()) {
          std::fprintf(stderr, "apply failed\n");
          return 1;
        }
      }
    }
    auto t1 = Clock::now();
    replay.push_back(Ms(t0, t1));
    heap = LiveHeap() - heap0;
    if (doc.Text() != t->end_content) {
      std::fprintf(stderr, "%s: wrong final text\n", name.c_str());
      return 1;
    }
    std::string snap = doc.Save();
    encoded = snap.size();
    runs = doc.stats().runs;
    op_runs = doc.stats().op_runs;
    auto t2 = Clock::now();
    auto loaded = Doc::Load(snap);
    auto t3 = Clock::now();
    if (!loaded.ok() || loaded->Length() != doc.Length()) {
      std::fprintf(stderr, "%s: load failed\n", name.c_str());
      return 1;
    }
    load.push_back(Ms(t2, t3));
  }
  std::sort(replay.begin(), replay.end());
  std::sort(load.begin(), load.end());
  std::printf(
      "{\"impl\":\"hub\",\"trace\":\"%s\",\"edits\":%zu,\"replay_ms\":%.2f,\"heap_bytes\":%zu,"
      "\"encoded_bytes\":%zu,\"load_ms\":%.2f,\"runs\":%zu,\"op_runs\":%zu,\"maxrss_kb\":%ld}\n",
      name.c_str(), t->edits(), replay[replay.size() / 2], heap, encoded, load[load.size() / 2], runs,
      op_runs, MaxRssKb());
  std::fflush(stdout);
  return 0;
}

// A ~`mb` MB note: paragraphs of a trace's text pasted at random places, then
// a few thousand small edits all over it, so the tree has many runs.
int BigNote(const std::string& dir, int mb, int rounds) {
  auto t = hub::notes::LoadTrace(dir + "/automerge-paper.json.gz");
  if (!t.ok()) return 1;
  const std::string& text = t->end_content;
  Doc doc(DocOptions{.agent = "big", .max_size_bytes = uint64_t{2} << 30});
  std::mt19937 rng(42);
  auto t0 = Clock::now();
  while (doc.Size() < static_cast<uint64_t>(mb) << 20) {
    std::vector<Edit> e{{static_cast<int64_t>(rng() % (doc.Length() + 1)), 0, text}};
    if (!doc.Apply(e).ok()) return 1;
  }
  for (int i = 0; i < 20000; ++i) {
    int64_t len = static_cast<int64_t>(doc.Length());
    int64_t pos = static_cast<int64_t>(rng() % static_cast<uint64_t>(len - 10));
    std::vector<Edit> e{{pos, i % 3 == 0 ? 5 : 0, "edit"}};
    if (!doc.Apply(e).ok()) return 1;
  }
  auto t1 = Clock::now();
  std::string snap = doc.Save();
  std::vector<double> load, text_ms;
  for (int r = 0; r < rounds; ++r) {
    auto a = Clock::now();
    auto loaded = Doc::Load(snap, DocOptions{.agent = "big", .max_size_bytes = uint64_t{2} << 30});
    auto b = Clock::now();
    if (!loaded.ok() || loaded->Size() != doc.Size()) {
      std::fprintf(stderr, "big note: load failed\n");
      return 1;
    }
    std::string s = loaded->Text();
    auto c = Clock::now();
    load.push_back(Ms(a, b));
    text_ms.push_back(Ms(b, c));
  }
  std::sort(load.begin(), load.end());
  std::sort(text_ms.begin(), text_ms.end());
  std::printf(
      "{\"impl\":\"hub\",\"trace\":\"big-note\",\"size_bytes\":%llu,\"build_ms\":%.1f,"
      "\"encoded_bytes\":%zu,\"load_ms\":%.2f,\"text_ms\":%.2f,\"runs\":%zu,\"maxrss_kb\":%ld}\n",
      static_cast<unsigned long long>(doc.Size()), Ms(t0, t1), snap.size(), load[load.size() / 2],
      text_ms[text_ms.size() / 2], doc.stats().runs, MaxRssKb());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = HUB_NOTES_TRACES;
  std::vector<std::string> traces;
  int rounds = 3, big_mb = 100;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--traces") dir = next();
    else if (a == "--trace") traces.push_back(next());
    else if (a == "--rounds") rounds = std::max(1, std::atoi(next().c_str()));
    else if (a == "--big-mb") big_mb = std::atoi(next().c_str());
    else {
      std::fprintf(stderr, "usage: notes_bench [--traces DIR] [--trace NAME]... [--big-mb N] [--rounds N]\n");
      return 2;
    }
  }
  if (traces.empty()) traces = {"automerge-paper", "seph-blog1"};
  for (const auto& name : traces) {
    if (name == "none") continue;
    if (int rc = ReplayTrace(dir, name, rounds)) return rc;
  }
  if (big_mb > 0) return BigNote(dir, big_mb, rounds);
  return 0;
}
