#pragma once
// The document order of every item ever inserted (tombstones included), as a
// B-tree of runs: an order-statistic tree over visible code points, all items
// and visible UTF-8 bytes, plus an index from item id to leaf. All operations
// are O(log n) apart from Text() and the explicit walks.
//
// A run is a maximal group of items inserted by one agent with consecutive
// sequence numbers, typed left to right (item k's left origin is item k-1),
// sharing one right origin, one delete count and contiguous text.

#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace hub::notes::detail {

inline constexpr uint32_t kNoAgent = 0xFFFFFFFFu;

// An operation id: (agent index local to this replica, sequence number).
struct Id {
  uint32_t agent = kNoAgent;
  uint32_t seq = 0;
  bool none() const { return agent == kNoAgent; }
  bool operator==(const Id&) const = default;
};
inline uint64_t Key(Id id) { return (static_cast<uint64_t>(id.agent) << 32) | id.seq; }

struct Run {
  Id id;              // the first item
  uint32_t len = 0;   // items (code points)
  uint32_t del = 0;   // delete operations that removed these items (0: visible)
  uint64_t off = 0;   // byte offset of the text in the content buffer
  uint32_t bytes = 0; // UTF-8 bytes of the text
  Id ol;              // left origin of the first item
  Id orr;             // right origin of every item
};

struct Counts {
  uint64_t vis = 0, all = 0, bytes = 0;
  Counts& operator+=(const Counts& o) { vis += o.vis; all += o.all; bytes += o.bytes; return *this; }
  Counts& operator-=(const Counts& o) { vis -= o.vis; all -= o.all; bytes -= o.bytes; return *this; }
};
inline Counts CountsOf(const Run& r) {
  return r.del ? Counts{0, r.len, 0} : Counts{r.len, r.len, r.bytes};
}

// Non-ASCII runs are capped so that splitting one scans a bounded number of bytes.
inline constexpr uint32_t kMaxUnicodeRun = 1024;

struct Inner;
struct Node {
  Inner* parent = nullptr;
  bool leaf = true;
  uint16_t n = 0;
};
inline constexpr int kLeafRuns = 32;
inline constexpr int kFanout = 32;
struct Leaf : Node {
  Leaf* next = nullptr;
  Run runs[kLeafRuns];
};
struct Inner : Node {
  Node* child[kFanout];
  Counts cnt[kFanout];
};

// An item: runs[idx] of `leaf`, `off` items into the run.
struct Loc {
  Leaf* leaf = nullptr;
  int idx = 0;
  uint32_t off = 0;
  const Run& run() const { return leaf->runs[idx]; }
  Id id() const { return Id{run().id.agent, run().id.seq + off}; }
};

class Tree {
 public:
  // `content` holds the text every run points into; it outlives the tree and only grows.
  explicit Tree(const std::string& content);
  ~Tree();
  Tree(const Tree&) = delete;
  Tree& operator=(const Tree&) = delete;

  const Counts& total() const { return total_; }
  Leaf* first() const { return first_; }

  Loc FindVis(uint64_t p) const;  // p < total().vis
  Loc FindAll(uint64_t i) const;  // i < total().all
  // Builds the id index on first use (local edits at the current version never need it).
  std::optional<Loc> FindId(Id id) const;
  uint64_t AbsIndex(const Loc& l) const;
  // Visible code points and bytes before the item at `l`.
  Counts Before(const Loc& l) const;

  // Inserts `r` right after the item at `after` (nullptr: at the start),
  // extending that item's run when `r` continues it. Returns the new last item.
  Loc InsertAfter(const Loc* after, const Run& r);
  // Inserts `r` so that it gets absolute index `i` (0 <= i <= total().all).
  Loc InsertAtAbs(uint64_t i, const Run& r);
  // One more delete of items [l.off, l.off + n) of l's run (n <= len - off).
  void AddDelete(const Loc& l, uint32_t n);

  // Moves to the first item of the next run; false at the end.
  static bool NextRun(Loc& l) {
    if (l.idx + 1 < l.leaf->n) { ++l.idx; l.off = 0; return true; }
    for (Leaf* f = l.leaf->next; f; f = f->next) {
      if (f->n) { l = Loc{f, 0, 0}; return true; }
    }
    return false;
  }
  // The item after `l`; false at the end.
  static bool NextItem(Loc& l) {
    if (l.off + 1 < l.run().len) { ++l.off; return true; }
    return NextRun(l);
  }

  // Splits `r` after `k` items (0 < k < len).
  std::pair<Run, Run> Split(const Run& r, uint32_t k) const;
  size_t runs() const { return runs_; }
  size_t MemoryBytes() const;

 private:
  // Replaces runs [idx, idx + remove) of `leaf` by add[0..k); returns where add[0] ended up.
  std::pair<Leaf*, int> Splice(Leaf* leaf, int idx, int remove, const Run* add, int k);
  void SplitLeaf(Leaf* leaf, int h);
  void BuildIndex() const;
  void SplitInner(Inner* node);
  void InsertChildAfter(Node* existing, Node* added, const Counts& c);
  void AddUp(Node* node, const Counts& plus, const Counts& minus);
  bool Mergeable(const Run& a, const Run& b) const;
  void Free(Node* n);

  const std::string& content_;
  Node* root_;
  Leaf* first_;
  Counts total_;
  size_t leaves_ = 1, inners_ = 0, runs_ = 0;
  // Key(run.id) of every run -> its leaf; built lazily, then kept up to date.
  mutable bool indexed_ = false;
  // The leaf FindVis found last and the visible code points before it; valid
  // until counts change in another leaf (typing stays in one leaf).
  mutable Leaf* cursor_ = nullptr;
  mutable uint64_t cursor_start_ = 0;
  mutable std::map<uint64_t, Leaf*> index_;
};

}  // namespace hub::notes::detail
