#include "notes/detail/tree.h"

#include <cstring>

#include "notes/detail/utf8.h"

namespace hub::notes::detail {

namespace {
int IndexIn(const Inner* p, const Node* child) {
  int i = 0;
  while (p->child[i] != child) ++i;
  return i;
}
Counts Sum(const Leaf* l) {
  Counts c;
  for (int i = 0; i < l->n; ++i) c += CountsOf(l->runs[i]);
  return c;
}
Counts Sum(const Inner* in) {
  Counts c;
  for (int i = 0; i < in->n; ++i) c += in->cnt[i];
  return c;
}
}  // namespace

Tree::Tree(const std::string& content) : content_(content) {
  first_ = new Leaf();
  root_ = first_;
}

Tree::~Tree() { Free(root_); }

void Tree::Free(Node* n) {
  if (n->leaf) {
    delete static_cast<Leaf*>(n);
    return;
  }
  auto* in = static_cast<Inner*>(n);
  for (int i = 0; i < in->n; ++i) Free(in->child[i]);
  delete in;
}

size_t Tree::MemoryBytes() const {
  // A std::map node: three pointers, colour, key and value, rounded by malloc.
  return leaves_ * sizeof(Leaf) + inners_ * sizeof(Inner) + index_.size() * 64;
}

void Tree::BuildIndex() const {
  indexed_ = true;
  for (Leaf* f = first_; f; f = f->next) {
    for (int i = 0; i < f->n; ++i) index_.emplace_hint(index_.end(), Key(f->runs[i].id), f);
  }
}

std::pair<Run, Run> Tree::Split(const Run& r, uint32_t k) const {
  size_t b = r.bytes == r.len ? k : Utf8Offset(content_.data() + r.off, r.bytes, k);
  Run a = r, c = r;
  a.len = k;
  a.bytes = static_cast<uint32_t>(b);
  c.id.seq += k;
  c.len -= k;
  c.off += b;
  c.bytes -= static_cast<uint32_t>(b);
  c.ol = Id{r.id.agent, r.id.seq + k - 1};
  return {a, c};
}

bool Tree::Mergeable(const Run& a, const Run& b) const {
  if (a.id.agent != b.id.agent || a.id.seq + a.len != b.id.seq || a.del != b.del) return false;
  if (!(b.ol == Id{a.id.agent, a.id.seq + a.len - 1}) || !(b.orr == a.orr)) return false;
  if (a.off + a.bytes != b.off) return false;
  uint64_t len = uint64_t{a.len} + b.len, bytes = uint64_t{a.bytes} + b.bytes;
  if (bytes >= (1u << 31)) return false;
  return bytes == len || len <= kMaxUnicodeRun;
}

void Tree::AddUp(Node* node, const Counts& plus, const Counts& minus) {
  if (node != cursor_) cursor_ = nullptr;
  total_ += plus;
  total_ -= minus;
  for (Node* n = node; n->parent; n = n->parent) {
    Inner* p = n->parent;
    int i = IndexIn(p, n);
    p->cnt[i] += plus;
    p->cnt[i] -= minus;
  }
}

// The parent has room (the callers split it first: splitting it here would
// move counts between subtrees while `c` is in flight).
void Tree::InsertChildAfter(Node* existing, Node* added, const Counts& c) {
  Inner* p = existing->parent;
  int i = IndexIn(p, existing) + 1;
  std::memmove(&p->child[i + 1], &p->child[i], (p->n - i) * sizeof(Node*));
  std::memmove(&p->cnt[i + 1], &p->cnt[i], (p->n - i) * sizeof(Counts));
  p->child[i] = added;
  p->cnt[i] = c;
  added->parent = p;
  ++p->n;
}

void Tree::SplitInner(Inner* node) {
  if (node->parent && node->parent->n == kFanout) SplitInner(node->parent);
  auto* q = new Inner();
  q->leaf = false;
  ++inners_;
  int h = node->n / 2;
  q->n = static_cast<uint16_t>(node->n - h);
  for (int i = 0; i < q->n; ++i) {
    q->child[i] = node->child[h + i];
    q->cnt[i] = node->cnt[h + i];
    q->child[i]->parent = q;
  }
  node->n = static_cast<uint16_t>(h);
  Counts cq = Sum(q);
  if (node->parent) {
    node->parent->cnt[IndexIn(node->parent, node)] -= cq;
    InsertChildAfter(node, q, cq);
  } else {
    auto* r = new Inner();
    r->leaf = false;
    ++inners_;
    r->n = 2;
    r->child[0] = node;
    r->child[1] = q;
    r->cnt[0] = Sum(node);
    r->cnt[1] = cq;
    node->parent = q->parent = r;
    root_ = r;
  }
}

void Tree::SplitLeaf(Leaf* leaf, int h) {
  if (leaf->parent && leaf->parent->n == kFanout) SplitInner(leaf->parent);
  auto* r = new Leaf();
  ++leaves_;
  r->n = static_cast<uint16_t>(leaf->n - h);
  std::memcpy(static_cast<void*>(r->runs), &leaf->runs[h], r->n * sizeof(Run));
  leaf->n = static_cast<uint16_t>(h);
  r->next = leaf->next;
  leaf->next = r;
  if (indexed_) {
    for (int i = 0; i < r->n; ++i) index_.find(Key(r->runs[i].id))->second = r;
  }
  Counts cr = Sum(r);
  if (leaf->parent) {
    leaf->parent->cnt[IndexIn(leaf->parent, leaf)] -= cr;
    InsertChildAfter(leaf, r, cr);
  } else {
    auto* root = new Inner();
    root->leaf = false;
    ++inners_;
    root->n = 2;
    root->child[0] = leaf;
    root->child[1] = r;
    root->cnt[0] = Sum(leaf);
    root->cnt[1] = cr;
    leaf->parent = r->parent = root;
    root_ = root;
  }
}

std::pair<Leaf*, int> Tree::Splice(Leaf* leaf, int idx, int remove, const Run* add, int k) {
  if (leaf->n - remove + k > kLeafRuns) {
    // Split so that the replaced range stays in one leaf.
    int h = leaf->n / 2;
    if (idx < h && idx + remove > h) h = idx > 0 ? idx : idx + remove;
    SplitLeaf(leaf, h);
    if (idx >= h) {
      leaf = leaf->next;
      idx -= h;
    }
  }
  Counts plus, minus;
  for (int i = 0; i < remove; ++i) {
    const Run& old = leaf->runs[idx + i];
    minus += CountsOf(old);
    if (!indexed_) continue;
    bool kept = false;
    for (int j = 0; j < k; ++j) kept |= add[j].id == old.id;
    if (!kept) index_.erase(Key(old.id));
  }
  if (indexed_) {
    for (int j = 0; j < k; ++j) {
      bool existed = false;
      for (int i = 0; i < remove; ++i) existed |= leaf->runs[idx + i].id == add[j].id;
      if (!existed) index_.insert_or_assign(Key(add[j].id), leaf);
    }
  }
  std::memmove(static_cast<void*>(&leaf->runs[idx + k]), &leaf->runs[idx + remove],
               (leaf->n - idx - remove) * sizeof(Run));
  for (int j = 0; j < k; ++j) {
    leaf->runs[idx + j] = add[j];
    plus += CountsOf(add[j]);
  }
  leaf->n = static_cast<uint16_t>(leaf->n - remove + k);
  runs_ += static_cast<size_t>(k);
  runs_ -= static_cast<size_t>(remove);
  AddUp(leaf, plus, minus);
  return {leaf, idx};
}

Loc Tree::FindVis(uint64_t p) const {
  if (cursor_ && p >= cursor_start_) {
    uint64_t q = p - cursor_start_;
    for (int i = 0; i < cursor_->n; ++i) {
      const Run& r = cursor_->runs[i];
      if (r.del) continue;
      if (q < r.len) return Loc{cursor_, i, static_cast<uint32_t>(q)};
      q -= r.len;
    }
  }
  const uint64_t p0 = p;
  const Node* n = root_;
  while (!n->leaf) {
    auto* in = static_cast<const Inner*>(n);
    int i = 0;
    for (; i + 1 < in->n && p >= in->cnt[i].vis; ++i) p -= in->cnt[i].vis;
    n = in->child[i];
  }
  auto* l = const_cast<Leaf*>(static_cast<const Leaf*>(n));
  cursor_ = l;
  cursor_start_ = p0 - p;
  for (int i = 0; i < l->n; ++i) {
    const Run& r = l->runs[i];
    if (r.del) continue;
    if (p < r.len) return Loc{l, i, static_cast<uint32_t>(p)};
    p -= r.len;
  }
  return Loc{l, l->n - 1, 0};  // unreachable for p < total().vis
}

Loc Tree::FindAll(uint64_t p) const {
  const Node* n = root_;
  while (!n->leaf) {
    auto* in = static_cast<const Inner*>(n);
    int i = 0;
    for (; i + 1 < in->n && p >= in->cnt[i].all; ++i) p -= in->cnt[i].all;
    n = in->child[i];
  }
  auto* l = const_cast<Leaf*>(static_cast<const Leaf*>(n));
  for (int i = 0; i < l->n; ++i) {
    if (p < l->runs[i].len) return Loc{l, i, static_cast<uint32_t>(p)};
    p -= l->runs[i].len;
  }
  return Loc{l, l->n - 1, 0};  // unreachable for p < total().all
}

std::optional<Loc> Tree::FindId(Id id) const {
  if (!indexed_) BuildIndex();
  auto it = index_.upper_bound(Key(id));
  if (it == index_.begin()) return std::nullopt;
  --it;
  if ((it->first >> 32) != id.agent) return std::nullopt;
  Leaf* l = it->second;
  for (int i = 0; i < l->n; ++i) {
    const Run& r = l->runs[i];
    if (r.id.agent == id.agent && id.seq >= r.id.seq && id.seq - r.id.seq < r.len) {
      return Loc{l, i, id.seq - r.id.seq};
    }
  }
  return std::nullopt;
}

uint64_t Tree::AbsIndex(const Loc& l) const {
  uint64_t sum = l.off;
  for (int i = 0; i < l.idx; ++i) sum += l.leaf->runs[i].len;
  for (const Node* n = l.leaf; n->parent; n = n->parent) {
    const Inner* p = n->parent;
    for (int j = 0; p->child[j] != n; ++j) sum += p->cnt[j].all;
  }
  return sum;
}

Counts Tree::Before(const Loc& l) const {
  Counts c;
  for (int i = 0; i < l.idx; ++i) c += CountsOf(l.leaf->runs[i]);
  const Run& r = l.run();
  if (!r.del && l.off) {
    c.vis += l.off;
    c.bytes += r.bytes == r.len ? l.off : Utf8Offset(content_.data() + r.off, r.bytes, l.off);
  }
  for (const Node* n = l.leaf; n->parent; n = n->parent) {
    const Inner* p = n->parent;
    for (int j = 0; p->child[j] != n; ++j) c += p->cnt[j];
  }
  return c;
}

Loc Tree::InsertAfter(const Loc* after, const Run& r) {
  if (!after) {
    auto [lf, i] = Splice(first_, 0, 0, &r, 1);
    return Loc{lf, i, r.len - 1};
  }
  Loc a = *after;
  Run& cur = a.leaf->runs[a.idx];
  if (a.off + 1 == cur.len) {
    if (Mergeable(cur, r)) {
      Counts before = CountsOf(cur);
      cur.len += r.len;
      cur.bytes += r.bytes;
      AddUp(a.leaf, CountsOf(cur), before);
      return Loc{a.leaf, a.idx, cur.len - 1};
    }
    auto [lf, i] = Splice(a.leaf, a.idx + 1, 0, &r, 1);
    return Loc{lf, i, r.len - 1};
  }
  auto [x, y] = Split(cur, a.off + 1);
  Run add[3] = {x, r, y};
  auto [lf, i] = Splice(a.leaf, a.idx, 1, add, 3);
  return Loc{lf, i + 1, r.len - 1};
}

Loc Tree::InsertAtAbs(uint64_t i, const Run& r) {
  if (i == 0) return InsertAfter(nullptr, r);
  Loc l = FindAll(i - 1);
  return InsertAfter(&l, r);
}

void Tree::AddDelete(const Loc& l, uint32_t n) {
  // Replaces runs [lo, hi) of the leaf by up to 3 pieces; the deleted piece is
  // merged into a neighbouring tombstone run it continues (backspace and
  // delete-key streaks then stay one run).
  Leaf* leaf = l.leaf;
  Run pieces[3];
  int k = 0;
  Run rest = l.run();
  if (l.off > 0) {
    auto [a, b] = Split(rest, l.off);
    pieces[k++] = a;
    rest = b;
  }
  int deleted;
  if (n < rest.len) {
    auto [a, b] = Split(rest, n);
    a.del++;
    deleted = k;
    pieces[k++] = a;
    pieces[k++] = b;
  } else {
    rest.del++;
    deleted = k;
    pieces[k++] = rest;
  }
  int lo = l.idx, hi = l.idx + 1;
  Run merged[3];
  int m = 0;
  for (int j = 0; j < k; ++j) merged[m++] = pieces[j];
  if (deleted == 0 && lo > 0 && Mergeable(leaf->runs[lo - 1], merged[0])) {
    Run left = leaf->runs[lo - 1];
    left.len += merged[0].len;
    left.bytes += merged[0].bytes;
    merged[0] = left;
    --lo;
  }
  if (deleted == k - 1 && hi < leaf->n && Mergeable(merged[m - 1], leaf->runs[hi])) {
    merged[m - 1].len += leaf->runs[hi].len;
    merged[m - 1].bytes += leaf->runs[hi].bytes;
    ++hi;
  }
  Splice(leaf, lo, hi - lo, merged, m);
}

}  // namespace hub::notes::detail
