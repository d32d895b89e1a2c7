#include "notes/doc.h"

#include <algorithm>
#include <map>
#include <stdexcept>
#include <unordered_map>

#include "notes/detail/codec.h"
#include "notes/detail/tree.h"
#include "notes/detail/utf8.h"

namespace hub::notes {

namespace {
class Category : public std::error_category {
 public:
  const char* name() const noexcept override { return "notes"; }
  std::string message(int c) const override {
    switch (static_cast<errc>(c)) {
      case errc::bad_position: return "edit position out of range";
      case errc::bad_delete: return "delete count out of range";
      case errc::bad_utf8: return "text is not valid UTF-8";
      case errc::bad_version: return "malformed version";
      case errc::unknown_version: return "unknown version";
      case errc::bad_encoding: return "malformed encoded operations";
      case errc::too_large: return "note too large";
      case errc::too_many_pending: return "too many operations waiting for dependencies";
      case errc::bad_agent: return "bad agent name";
    }
    return "unknown";
  }
};

constexpr char kOpsMagic[] = "HNO\x01";
constexpr char kSnapshotMagic[] = "HNS\x01";
constexpr uint32_t kMaxSeq = 0xFFFFFFF0u;  // sequence numbers and Lamport timestamps stay below

Error Fail(errc e, std::string msg) { return MakeError(make_error_code(e), std::move(msg)); }

// ---- base64url (no padding), for version tokens ----
constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string B64Encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() * 4 + 2) / 3);
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out.push_back(kB64[(v >> s) & 63]);
  }
  if (in.size() - i == 1) {
    uint32_t v = uint8_t(in[i]) << 16;
    out.push_back(kB64[(v >> 18) & 63]);
    out.push_back(kB64[(v >> 12) & 63]);
  } else if (in.size() - i == 2) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out.push_back(kB64[(v >> 18) & 63]);
    out.push_back(kB64[(v >> 12) & 63]);
    out.push_back(kB64[(v >> 6) & 63]);
  }
  return out;
}

bool B64Decode(std::string_view in, std::string& out) {
  if (in.size() % 4 == 1) return false;
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
  };
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v = val(c);
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return (acc & ((1u << bits) - 1)) == 0;  // canonical: unused bits are zero
}
}  // namespace

const std::error_category& category() {
  static Category c;
  return c;
}

// ---- Version ----

void Version::Set(std::string agent, uint32_t count) {
  auto it = std::lower_bound(v_.begin(), v_.end(), agent,
                             [](const auto& e, const std::string& a) { return e.first < a; });
  if (it != v_.end() && it->first == agent) {
    if (count) it->second = count; else v_.erase(it);
  } else if (count) {
    v_.insert(it, {std::move(agent), count});
  }
}

uint32_t Version::Count(std::string_view agent) const {
  auto it = std::lower_bound(v_.begin(), v_.end(), agent,
                             [](const auto& e, std::string_view a) { return e.first < a; });
  return it != v_.end() && it->first == agent ? it->second : 0;
}

bool Version::Includes(const Version& other) const {
  for (const auto& [a, c] : other.v_) {
    if (Count(a) < c) return false;
  }
  return true;
}

uint64_t Version::Size() const {
  uint64_t n = 0;
  for (const auto& e : v_) n += e.second;
  return n;
}

std::string Version::Encode() const {
  if (v_.empty()) return {};
  std::string raw;
  detail::Writer w(raw);
  w.Varint(v_.size());
  for (const auto& [a, c] : v_) {
    w.Bytes(a);
    w.Varint(c);
  }
  return B64Encode(raw);
}

Result<Version> Version::Decode(std::string_view token) {
  Version v;
  if (token.empty()) return v;
  auto bad = [] {
    return Fail(errc::bad_version,
                "the version token is malformed; use the `version` of a note you read");
  };
  std::string raw;
  if (token.size() > 64 * 1024 || !B64Decode(token, raw)) return bad();
  detail::Reader r(raw);
  uint64_t n = r.Bounded(r.remaining());
  if (n == 0) return bad();  // the empty version is ""
  for (uint64_t i = 0; i < n && r.ok(); ++i) {
    std::string_view a = r.Bytes(kMaxAgentBytes);
    uint64_t c = r.Bounded(kMaxSeq);
    if (!r.ok() || a.empty() || c == 0) return bad();
    if (!v.v_.empty() && v.v_.back().first >= a) return bad();  // canonical: sorted, unique
    v.v_.emplace_back(std::string(a), static_cast<uint32_t>(c));
  }
  if (!r.ok() || !r.done()) return bad();
  return v;
}

// ---- the document ----

namespace detail {

namespace {
enum : uint8_t { kInsert = 0, kDeleteFwd = 1, kDeleteRev = 2 };

// A run of operations by one agent with consecutive sequence numbers and
// Lamport timestamps, each depending on the one before.
struct OpRun {
  Id id;
  uint32_t len = 0;
  uint32_t lamport = 0;
  uint8_t kind = kInsert;
  uint32_t parents_off = 0, parents_n = 0;  // parents of the first operation
  Id ol, orr;                               // insert: origins of the first item
  Id target;                                // delete: item removed by the first operation
  uint64_t off = 0;                         // insert: text in the content buffer
  uint32_t bytes = 0;
};

Id DeleteTarget(uint8_t kind, Id t, uint32_t k) {
  return kind == kDeleteRev ? Id{t.agent, t.seq - k} : Id{t.agent, t.seq + k};
}

struct Agent {
  std::string name;
  uint32_t next = 0;           // operations seen
  std::vector<uint32_t> ops;   // indices of its OpRuns in the log, by sequence number
};

// A decoded remote operation run (ids in local agent indices).
struct WireOp {
  uint8_t kind = 0;
  Id id;
  uint32_t len = 0, lamport = 0;
  std::vector<Id> parents;
  Id ol, orr, target;
  std::string_view text;  // into the message while it is being applied
  std::string owned;      // the text while pending
  std::string_view Text() const { return owned.empty() ? text : std::string_view(owned); }
};

// Positions interpreted at an older version: the items whose insert is in
// `vv` (or in this request's own operations [extra_lo, extra_hi) of the
// local agent), minus those removed by a delete that is also in the view.
struct View {
  std::vector<uint32_t> vv;
  uint32_t extra_agent = kNoAgent, extra_lo = 0, extra_hi = 0;
  std::map<uint64_t, uint32_t> undel;  // item -> its deletes that are not in the view
};

struct Span {
  Loc loc;
  uint32_t n;
  bool in_view;
  bool visible;
};

// Splits text into pieces that fit a run: ASCII stretches up to 1 GiB, other
// text up to kMaxUnicodeRun code points.
template <class F>
void ForEachChunk(std::string_view text, F f) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t a = 0;
    while (pos + a < text.size() && a < (1u << 30) && !(text[pos + a] & 0x80)) ++a;
    if (a > 0 && (a >= kMaxUnicodeRun || pos + a == text.size() || a == (1u << 30))) {
      f(text.substr(pos, a), static_cast<uint32_t>(a));
      pos += a;
      continue;
    }
    size_t b = Utf8Offset(text.data() + pos, text.size() - pos, kMaxUnicodeRun);
    std::string_view piece = text.substr(pos, b);
    f(piece, static_cast<uint32_t>(Utf8Count(piece)));
    pos += b;
  }
}
}  // namespace

class DocImpl {
 public:
  explicit DocImpl(DocOptions o) : opt_(std::move(o)) {
    if (opt_.agent.empty() || opt_.agent.size() > kMaxAgentBytes) {
      throw std::invalid_argument("notes::DocOptions::agent must have 1 to 64 bytes");
    }
    local_ = Intern(opt_.agent);
  }

  DocOptions opt_;
  std::vector<Agent> agents_;
  std::unordered_map<std::string, uint32_t> by_name_;
  std::string content_;
  Tree tree_{content_};
  std::vector<OpRun> log_;
  std::vector<Id> parents_;
  std::vector<Id> frontier_;
  uint64_t next_lamport_ = 0;
  std::vector<WireOp> pending_;
  uint32_t local_ = 0;
  std::vector<Id> scratch_;

  uint32_t Intern(const std::string& name) {
    auto [it, added] = by_name_.try_emplace(name, static_cast<uint32_t>(agents_.size()));
    if (added) agents_.push_back(Agent{name, 0, {}});
    return it->second;
  }

  bool Less(Id a, Id b) const {
    if (a.agent != b.agent) return agents_[a.agent].name < agents_[b.agent].name;
    return a.seq < b.seq;
  }

  bool Known(Id id) const { return id.agent < agents_.size() && id.seq < agents_[id.agent].next; }

  // ---- the operation log ----

  void AppendOp(OpRun o, const Id* ps, size_t pn) {
    Agent& a = agents_[o.id.agent];
    bool merged = false;
    if (!log_.empty() && pn == 1 && o.id.seq > 0 && ps[0] == Id{o.id.agent, o.id.seq - 1}) {
      OpRun& last = log_.back();
      bool follows = last.id.agent == o.id.agent && last.id.seq + last.len == o.id.seq &&
                     last.lamport + last.len == o.lamport && uint64_t{last.len} + o.len < (1u << 31);
      if (follows && o.kind == kInsert && last.kind == kInsert) {
        if (o.ol == Id{o.id.agent, o.id.seq - 1} && o.orr == last.orr &&
            last.off + last.bytes == o.off && uint64_t{last.bytes} + o.bytes < (1u << 31)) {
          last.len += o.len;
          last.bytes += o.bytes;
          merged = true;
        }
      } else if (follows && o.kind != kInsert && last.kind != kInsert &&
                 o.target.agent == last.target.agent) {
        bool fwd_ok = (last.len == 1 || last.kind == kDeleteFwd) && (o.len == 1 || o.kind == kDeleteFwd);
        bool rev_ok = (last.len == 1 || last.kind == kDeleteRev) && (o.len == 1 || o.kind == kDeleteRev);
        if (fwd_ok && o.target.seq == last.target.seq + last.len) {
          last.kind = kDeleteFwd;
          last.len += o.len;
          merged = true;
        } else if (rev_ok && last.target.seq >= last.len && o.target.seq == last.target.seq - last.len) {
          last.kind = kDeleteRev;
          last.len += o.len;
          merged = true;
        }
      }
    }
    if (!merged) {
      o.parents_off = static_cast<uint32_t>(parents_.size());
      o.parents_n = static_cast<uint32_t>(pn);
      parents_.insert(parents_.end(), ps, ps + pn);
      log_.push_back(o);
      a.ops.push_back(static_cast<uint32_t>(log_.size() - 1));
    }
    a.next = o.id.seq + o.len;
    next_lamport_ = std::max<uint64_t>(next_lamport_, uint64_t{o.lamport} + o.len);
    for (size_t i = 0; i < pn; ++i) std::erase(frontier_, ps[i]);
    frontier_.push_back(Id{o.id.agent, o.id.seq + o.len - 1});
  }

  // ---- integration (FugueMax, as diamond-types' YjsMod) ----

  int64_t AbsOf(Id id) const {
    auto l = tree_.FindId(id);
    return l ? static_cast<int64_t>(tree_.AbsIndex(*l)) : -1;
  }

  // Places the new run `r` between its origins, ordering it among concurrent
  // inserts at the same place so that runs never interleave.
  Loc Integrate(const Run& r) {
    const uint64_t total = tree_.total().all;
    const int64_t left = r.ol.none() ? -1 : AbsOf(r.ol);
    const uint64_t right = r.orr.none() ? total : static_cast<uint64_t>(AbsOf(r.orr));
    uint64_t i = static_cast<uint64_t>(left + 1), dest = i;
    bool scanning = false;
    Loc loc;
    if (i < total && i < right) loc = tree_.FindAll(i);
    while (true) {
      if (!scanning) dest = i;
      if (i >= total || i >= right) break;
      const Run& o = loc.run();
      int64_t oleft = loc.off > 0 ? static_cast<int64_t>(i) - 1 : (o.ol.none() ? -1 : AbsOf(o.ol));
      uint64_t oright = o.orr.none() ? total : static_cast<uint64_t>(AbsOf(o.orr));
      if (oleft < left) break;
      if (oleft == left) {
        if (oright < right) {
          scanning = true;
        } else if (oright == right) {
          if (Less(r.id, loc.id())) break;
          scanning = false;
        } else {
          scanning = false;
        }
      }
      // The rest of this run has its left origin inside the run: skipped.
      uint64_t adv = o.len - loc.off;
      if (i + adv > right) {
        adv = right - i;
        loc.off += static_cast<uint32_t>(adv);
        i += adv;
      } else {
        i += adv;
        if (!Tree::NextRun(loc)) i = total;
      }
    }
    return tree_.InsertAtAbs(dest, r);
  }

  // Calls f(loc, n) for the runs of items [lo, lo + n) of `agent`; false if one is missing.
  template <class F>
  bool ForItems(uint32_t agent, uint32_t lo, uint32_t n, F f) {
    while (n > 0) {
      auto l = tree_.FindId(Id{agent, lo});
      if (!l) return false;
      uint32_t k = std::min(n, l->run().len - l->off);
      f(*l, k);
      lo += k;
      n -= k;
    }
    return true;
  }

  void DeleteItems(uint32_t agent, uint32_t lo, uint32_t n) {
    ForItems(agent, lo, n, [&](const Loc& l, uint32_t k) { tree_.AddDelete(l, k); });
  }

  // ---- views at older versions ----

  Span SpanAt(const View& v, const Loc& l) const {
    const Run& r = l.run();
    uint32_t a = r.id.agent, s = r.id.seq + l.off, lim = r.id.seq + r.len;
    uint32_t vva = a < v.vv.size() ? v.vv[a] : 0;
    bool in;
    if (s < vva) {
      in = true;
      lim = std::min(lim, vva);
    } else if (a == v.extra_agent && s >= v.extra_lo && s < v.extra_hi) {
      in = true;
      lim = std::min(lim, v.extra_hi);
    } else {
      in = false;
      if (a == v.extra_agent && s < v.extra_lo) lim = std::min(lim, v.extra_lo);
    }
    bool deleted = r.del > 0;
    if (deleted && !v.undel.empty()) {
      auto it = v.undel.lower_bound(Key(Id{a, s}));
      if (it != v.undel.end() && it->first < Key(Id{a, lim})) {
        if (it->first == Key(Id{a, s})) {
          deleted = r.del > it->second;
          lim = s + 1;
        } else {
          lim = static_cast<uint32_t>(it->first);
        }
      }
    }
    return Span{l, lim - s, in, in && !deleted};
  }

  template <class F>
  void Walk(const View& v, Loc l, F f) const {
    while (true) {
      Span sp = SpanAt(v, l);
      if (!f(sp)) return;
      l.off += sp.n;
      if (l.off >= l.run().len && !Tree::NextRun(l)) return;
    }
  }
  bool Start(Loc& l) const {
    if (tree_.total().all == 0) return false;
    l = Loc{tree_.first(), 0, 0};
    while (l.leaf->n == 0) l.leaf = l.leaf->next;
    return true;
  }

  uint64_t ViewLength(const View& v) const {
    uint64_t n = 0;
    Loc l;
    if (Start(l)) Walk(v, l, [&](const Span& s) { if (s.visible) n += s.n; return true; });
    return n;
  }
  Loc LocateView(const View& v, uint64_t p) const {
    Loc out, l;
    Start(l);
    Walk(v, l, [&](const Span& s) {
      if (!s.visible) return true;
      if (p < s.n) {
        out = s.loc;
        out.off += static_cast<uint32_t>(p);
        return false;
      }
      p -= s.n;
      return true;
    });
    return out;
  }
  Id FirstInViewFrom(const View& v, Loc l) const {
    Id out;
    Walk(v, l, [&](const Span& s) {
      if (s.in_view) out = s.loc.id();
      return !s.in_view;
    });
    return out;
  }

  View MakeView(const std::vector<uint32_t>& vv) const {
    View v;
    v.vv = vv;
    for (uint32_t a = 0; a < agents_.size(); ++a) {
      const auto& ops = agents_[a].ops;
      for (size_t j = ops.size(); j-- > 0;) {
        const OpRun& o = log_[ops[j]];
        if (o.id.seq + o.len <= vv[a]) break;
        if (o.kind == kInsert) continue;
        for (uint32_t k = vv[a] > o.id.seq ? vv[a] - o.id.seq : 0; k < o.len; ++k) {
          v.undel[Key(DeleteTarget(o.kind, o.target, k))]++;
        }
      }
    }
    return v;
  }

  Result<std::vector<uint32_t>> ToVector(const Version& version) const {
    std::vector<uint32_t> vv(agents_.size(), 0);
    for (const auto& [name, count] : version.entries()) {
      auto it = by_name_.find(name);
      if (it == by_name_.end() || agents_[it->second].next < count) {
        return Fail(errc::unknown_version,
                    "the version names edits this note does not have; reload the note");
      }
      vv[it->second] = count;
    }
    return vv;
  }

  // Every operation in `vv` must have its parents in `vv`.
  Result<void> CheckClosed(const std::vector<uint32_t>& vv) const {
    for (const OpRun& o : log_) {
      if (o.id.seq >= vv[o.id.agent]) continue;
      for (uint32_t i = 0; i < o.parents_n; ++i) {
        Id p = parents_[o.parents_off + i];
        if (p.seq >= vv[p.agent]) {
          return Fail(errc::bad_version,
                      "the version is not a state of this note; use the `version` of a note you read");
        }
      }
    }
    return Ok();
  }

  std::string TextOf(const View* v) const {
    std::string out;
    Loc l;
    if (!v) {
      out.reserve(tree_.total().bytes);
      for (Leaf* f = tree_.first(); f; f = f->next) {
        for (int i = 0; i < f->n; ++i) {
          const Run& r = f->runs[i];
          if (!r.del) out.append(content_, r.off, r.bytes);
        }
      }
      return out;
    }
    if (!Start(l)) return out;
    Walk(*v, l, [&](const Span& s) {
      if (s.visible) {
        const Run& r = s.loc.run();
        size_t b0 = s.loc.off, b1 = s.loc.off + s.n;
        if (r.bytes != r.len) {
          b0 = Utf8Offset(content_.data() + r.off, r.bytes, s.loc.off);
          b1 = b0 + Utf8Offset(content_.data() + r.off + b0, r.bytes - b0, s.n);
        }
        out.append(content_, r.off + b0, b1 - b0);
      }
      return true;
    });
    return out;
  }

  // Edits turning the text of view `v` into the current text (see
  // Doc::ChangesSince): one walk in document order; a span visible in the view
  // but deleted now is a delete, one not in the view but visible now an insert.
  std::vector<Edit> ChangesFrom(const View& v) const {
    std::vector<Edit> out;
    Loc l;
    if (!Start(l)) return out;
    uint64_t pos = 0;  // code points of the new text before the walk's place
    Edit cur;
    bool open = false;
    auto flush = [&] {
      if (open) out.push_back(std::move(cur));
      cur = Edit{};
      open = false;
    };
    auto begin = [&] {
      if (!open) {
        cur.position = static_cast<int64_t>(pos);
        open = true;
      }
    };
    Walk(v, l, [&](const Span& s) {
      const Run& r = s.loc.run();
      bool now = r.del == 0;
      if (s.visible && now) {
        flush();
        pos += s.n;
      } else if (s.visible) {
        begin();
        cur.delete_count += s.n;
      } else if (now) {
        begin();
        size_t b0 = s.loc.off, b1 = s.loc.off + s.n;
        if (r.bytes != r.len) {
          b0 = Utf8Offset(content_.data() + r.off, r.bytes, s.loc.off);
          b1 = b0 + Utf8Offset(content_.data() + r.off + b0, r.bytes - b0, s.n);
        }
        cur.insert.append(content_, r.off + b0, b1 - b0);
        pos += s.n;
      }
      return true;
    });
    flush();
    return out;
  }

  // ---- local edits ----

  struct Request {
    bool current;
    View view;
    std::vector<Id> next_parents;
  };

  void Record(Request& q, OpRun o) {
    AppendOp(o, q.next_parents.data(), q.next_parents.size());
    q.next_parents.assign(1, Id{o.id.agent, o.id.seq + o.len - 1});
    q.view.extra_hi = agents_[local_].next;
  }
  OpRun NewOp(uint8_t kind, uint32_t len) {
    OpRun o;
    o.kind = kind;
    o.id = Id{local_, agents_[local_].next};
    o.len = len;
    o.lamport = static_cast<uint32_t>(next_lamport_);
    return o;
  }

  void LocalDelete(Request& q, uint64_t pos, uint64_t count) {
    if (q.current) {
      while (count > 0) {
        Loc l = tree_.FindVis(pos);
        uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(count, l.run().len - l.off));
        OpRun o = NewOp(kDeleteFwd, n);
        o.target = l.id();
        tree_.AddDelete(l, n);
        Record(q, o);
        count -= n;
      }
      return;
    }
    std::vector<std::pair<Id, uint32_t>> ranges;
    Walk(q.view, LocateView(q.view, pos), [&](const Span& s) {
      if (!s.visible) return true;
      uint32_t k = static_cast<uint32_t>(std::min<uint64_t>(count, s.n));
      ranges.emplace_back(s.loc.id(), k);
      count -= k;
      return count > 0;
    });
    for (auto [id, k] : ranges) {
      OpRun o = NewOp(kDeleteFwd, k);
      o.target = id;
      DeleteItems(id.agent, id.seq, k);
      Record(q, o);
    }
  }

  void LocalInsert(Request& q, uint64_t pos, std::string_view text) {
    Id ol, orr;
    Loc prev;
    bool have_prev = pos > 0;
    if (q.current) {
      if (have_prev) {
        prev = tree_.FindVis(pos - 1);
        ol = prev.id();
        Loc n = prev;
        if (Tree::NextItem(n)) orr = n.id();
      } else if (tree_.total().all > 0) {
        orr = tree_.FindAll(0).id();
      }
    } else {
      Loc start;
      if (have_prev) {
        prev = LocateView(q.view, pos - 1);
        ol = prev.id();
        Loc n = prev;
        if (Tree::NextItem(n)) orr = FirstInViewFrom(q.view, n);
      } else if (Start(start)) {
        orr = FirstInViewFrom(q.view, start);
      }
    }
    ForEachChunk(text, [&](std::string_view piece, uint32_t cps) {
      OpRun o = NewOp(kInsert, cps);
      o.ol = ol;
      o.orr = orr;
      o.off = content_.size();
      o.bytes = static_cast<uint32_t>(piece.size());
      content_.append(piece);
      Run r{o.id, cps, 0, o.off, o.bytes, ol, orr};
      // Current version: nothing lies between the origins, no scan needed.
      prev = q.current ? tree_.InsertAfter(have_prev ? &prev : nullptr, r) : Integrate(r);
      have_prev = true;
      Record(q, o);
      ol = Id{o.id.agent, o.id.seq + cps - 1};
    });
  }

  // `base` nullptr: the current version.
  Result<void> Apply(const Version* base, std::span<const Edit> edits) {
    Request q;
    q.current = true;
    Result<std::vector<uint32_t>> vv = std::vector<uint32_t>{};
    if (base) {
      vv = ToVector(*base);
      if (!vv) return vv.error();
      q.current = *vv == Seen();
    }
    if (!q.current) {
      HUB_TRY(CheckClosed(*vv));
      q.view = MakeView(*vv);
      for (uint32_t a = 0; a < vv->size(); ++a) {
        if ((*vv)[a]) q.next_parents.push_back(Id{a, (*vv)[a] - 1});
      }
    } else {
      q.next_parents.swap(scratch_);  // reuses its capacity: no allocation per edit
      q.next_parents.assign(frontier_.begin(), frontier_.end());
    }
    uint64_t len = q.current ? tree_.total().vis : ViewLength(q.view);
    uint64_t inserted = 0, ops = 0;
    for (size_t i = 0; i < edits.size(); ++i) {
      const Edit& e = edits[i];
      auto at = [i] { return "edit " + std::to_string(i) + ": "; };
      if (e.position < 0 || static_cast<uint64_t>(e.position) > len) {
        return Fail(errc::bad_position, at() + "position " + std::to_string(e.position) +
                                            " is outside the text (length " + std::to_string(len) +
                                            "); positions are code points from 0 to the length");
      }
      uint64_t pos = static_cast<uint64_t>(e.position);
      if (e.delete_count < 0 || static_cast<uint64_t>(e.delete_count) > len - pos) {
        return Fail(errc::bad_delete, at() + "cannot delete " + std::to_string(e.delete_count) +
                                          " code points at " + std::to_string(pos) +
                                          " (length " + std::to_string(len) + ")");
      }
      int64_t n = Utf8Count(e.insert);
      if (n < 0) {
        return Fail(errc::bad_utf8, at() + "the inserted text is not valid UTF-8 "
                                         "(send UTF-8 without lone surrogates)");
      }
      len = len - static_cast<uint64_t>(e.delete_count) + static_cast<uint64_t>(n);
      inserted += e.insert.size();
      ops += static_cast<uint64_t>(e.delete_count) + static_cast<uint64_t>(n);
    }
    if (tree_.total().bytes + inserted > opt_.max_size_bytes) {
      return Fail(errc::too_large, "the note would exceed " + std::to_string(opt_.max_size_bytes) +
                                       " bytes; shorten the text or split the note");
    }
    if (uint64_t{agents_[local_].next} + ops >= kMaxSeq || content_.size() + inserted >= (1ull << 40) ||
        next_lamport_ + ops >= kMaxSeq) {
      return Fail(errc::too_large, "the note's history is full; copy its text into a new note");
    }
    q.view.extra_agent = local_;
    q.view.extra_lo = q.view.extra_hi = agents_[local_].next;
    for (const Edit& e : edits) {
      if (e.delete_count > 0) LocalDelete(q, static_cast<uint64_t>(e.position), static_cast<uint64_t>(e.delete_count));
      if (!e.insert.empty()) LocalInsert(q, static_cast<uint64_t>(e.position), e.insert);
    }
    q.next_parents.swap(scratch_);
    return Ok();
  }

  std::vector<uint32_t> Seen() const {
    std::vector<uint32_t> c(agents_.size());
    for (size_t i = 0; i < agents_.size(); ++i) c[i] = agents_[i].next;
    return c;
  }

  Version CurrentVersion() const {
    Version v;
    for (const Agent& a : agents_) {
      if (a.next) v.Set(a.name, a.next);
    }
    return v;
  }

  // ---- encoding ----

  static void PutId(Writer& w, Id id) {
    if (id.none()) {
      w.Varint(0);
    } else {
      w.Varint(uint64_t{id.agent} + 1);
      w.Varint(id.seq);
    }
  }

  std::string Encode(const Version& since, std::string_view magic) const {
    std::vector<uint32_t> vv(agents_.size(), 0);
    for (const auto& [name, count] : since.entries()) {
      auto it = by_name_.find(name);
      if (it != by_name_.end()) vv[it->second] = std::min(count, agents_[it->second].next);
    }
    std::string out;
    Writer w(out);
    w.Raw(magic);
    w.Varint(agents_.size());
    for (const Agent& a : agents_) w.Bytes(a.name);
    uint64_t n = 0;
    for (const OpRun& o : log_) n += o.id.seq + o.len > vv[o.id.agent];
    w.Varint(n);
    for (const OpRun& o : log_) {
      uint32_t have = vv[o.id.agent];
      if (o.id.seq + o.len <= have) continue;
      uint32_t k = have > o.id.seq ? have - o.id.seq : 0;
      Id self_prev{o.id.agent, o.id.seq + k - 1};
      w.Byte(o.kind);
      w.Varint(o.id.agent);
      w.Varint(o.id.seq + k);
      w.Varint(o.len - k);
      w.Varint(o.lamport + k);
      if (k) {
        w.Varint(1);
        PutId(w, self_prev);
      } else {
        w.Varint(o.parents_n);
        for (uint32_t i = 0; i < o.parents_n; ++i) PutId(w, parents_[o.parents_off + i]);
      }
      if (o.kind == kInsert) {
        size_t b = k == 0 ? 0 : o.bytes == o.len ? k : Utf8Offset(content_.data() + o.off, o.bytes, k);
        PutId(w, k ? self_prev : o.ol);
        PutId(w, o.orr);
        w.Bytes(std::string_view(content_).substr(o.off + b, o.bytes - b));
      } else {
        PutId(w, DeleteTarget(o.kind, o.target, k));
      }
    }
    return out;
  }

  // Parses a message; ids are mapped to local agent indices (interning names).
  Result<std::vector<WireOp>> Parse(std::string_view bytes, std::string_view magic) {
    auto bad = [](const char* what) {
      return Fail(errc::bad_encoding, std::string("malformed note operations: ") + what);
    };
    if (bytes.substr(0, 4) != magic) return bad("wrong magic or format version");
    Reader r(bytes.substr(4));
    uint64_t nagents = r.Bounded(r.remaining());
    std::vector<std::string_view> names;
    for (uint64_t i = 0; i < nagents && r.ok(); ++i) {
      std::string_view s = r.Bytes(kMaxAgentBytes);
      if (r.ok() && s.empty()) return bad("empty agent name");
      names.push_back(s);
    }
    if (!r.ok()) return bad("truncated agent table");
    auto get_id = [&](Id& id) {
      uint64_t a = r.Bounded(nagents);
      if (a == 0) {
        id = Id{};
        return;
      }
      id.agent = static_cast<uint32_t>(a - 1);
      id.seq = static_cast<uint32_t>(r.Bounded(kMaxSeq));
    };
    uint64_t nops = r.Bounded(r.remaining() / 6);
    std::vector<WireOp> ops;
    ops.reserve(nops);
    for (uint64_t i = 0; i < nops && r.ok(); ++i) {
      WireOp o;
      o.kind = r.Byte();
      if (o.kind > kDeleteRev) return bad("unknown operation kind");
      o.id.agent = static_cast<uint32_t>(r.Bounded(nagents ? nagents - 1 : 0));
      if (nagents == 0) return bad("operation without agents");
      o.id.seq = static_cast<uint32_t>(r.Bounded(kMaxSeq));
      o.len = static_cast<uint32_t>(r.Bounded(1u << 31));
      o.lamport = static_cast<uint32_t>(r.Bounded(kMaxSeq));
      if (!r.ok() || o.len == 0 || uint64_t{o.id.seq} + o.len > kMaxSeq ||
          uint64_t{o.lamport} + o.len > kMaxSeq) {
        return bad("bad operation id or length");
      }
      uint64_t np = r.Bounded(std::min<uint64_t>(r.remaining(), 1u << 16));
      for (uint64_t j = 0; j < np && r.ok(); ++j) {
        Id p;
        get_id(p);
        if (p.none()) return bad("empty parent");
        o.parents.push_back(p);
      }
      if (o.kind == kInsert) {
        get_id(o.ol);
        get_id(o.orr);
        o.text = r.Bytes(r.remaining());
        if (r.ok() && Utf8Count(o.text) != static_cast<int64_t>(o.len)) return bad("text does not match length");
      } else {
        get_id(o.target);
        if (o.target.none()) return bad("delete without target");
        if (o.kind == kDeleteRev ? o.target.seq + 1 < o.len : uint64_t{o.target.seq} + o.len > kMaxSeq) {
          return bad("delete target out of range");
        }
      }
      ops.push_back(std::move(o));
    }
    if (!r.ok() || !r.done()) return bad("truncated or trailing bytes");
    std::vector<uint32_t> map(names.size());
    for (size_t i = 0; i < names.size(); ++i) map[i] = Intern(std::string(names[i]));
    auto remap = [&](Id& id) { if (!id.none()) id.agent = map[id.agent]; };
    for (WireOp& o : ops) {
      remap(o.id);
      for (Id& p : o.parents) remap(p);
      remap(o.ol);
      remap(o.orr);
      remap(o.target);
    }
    return ops;
  }

  enum class Step { kDone, kWait, kInvalid };

  Step TryIntegrate(const WireOp& w) {
    Agent& a = agents_[w.id.agent];
    if (a.next >= w.id.seq + w.len) return Step::kDone;  // duplicate
    if (a.next < w.id.seq) return Step::kWait;
    const uint32_t k = a.next - w.id.seq;  // already have the first k
    Id self_prev{w.id.agent, a.next - 1};
    std::vector<Id> ps = k ? std::vector<Id>{self_prev} : w.parents;
    for (Id p : ps) {
      if (!Known(p)) return Step::kWait;
    }
    OpRun o;
    o.kind = w.kind;
    o.id = Id{w.id.agent, a.next};
    o.len = w.len - k;
    o.lamport = w.lamport + k;
    auto item_state = [&](Id id) {
      if (id.none()) return Step::kDone;
      if (!Known(id)) return Step::kWait;
      return tree_.FindId(id) ? Step::kDone : Step::kInvalid;
    };
    if (w.kind == kInsert) {
      o.ol = k ? self_prev : w.ol;
      o.orr = w.orr;
      for (Step s : {item_state(o.ol), item_state(o.orr)}) {
        if (s != Step::kDone) return s;
      }
      if (!o.ol.none() && !o.orr.none() && AbsOf(o.ol) >= AbsOf(o.orr)) return Step::kInvalid;
      std::string_view text = w.Text();
      if (k) text.remove_prefix(Utf8Offset(text.data(), text.size(), k));
      if (content_.size() + text.size() >= (1ull << 40)) return Step::kInvalid;
      o.off = content_.size();
      o.bytes = static_cast<uint32_t>(text.size());
      content_.append(text);
      Id ol = o.ol;
      uint64_t off = o.off;
      uint32_t seq = o.id.seq;
      ForEachChunk(text, [&](std::string_view piece, uint32_t cps) {
        Integrate(Run{Id{o.id.agent, seq}, cps, 0, off, static_cast<uint32_t>(piece.size()), ol, o.orr});
        off += piece.size();
        seq += cps;
        ol = Id{o.id.agent, seq - 1};
      });
    } else {
      o.target = DeleteTarget(w.kind, w.target, k);
      uint32_t lo = w.kind == kDeleteRev ? o.target.seq - (o.len - 1) : o.target.seq;
      if (!Known(Id{o.target.agent, lo + o.len - 1})) return Step::kWait;
      if (!ForItems(o.target.agent, lo, o.len, [](const Loc&, uint32_t) {})) return Step::kInvalid;
      DeleteItems(o.target.agent, lo, o.len);
    }
    AppendOp(o, ps.data(), ps.size());
    return Step::kDone;
  }

  Result<void> ApplyOps(std::vector<WireOp> ops) {
    bool progress = false, overflow = false, invalid = false;
    for (WireOp& w : ops) {
      Step s = TryIntegrate(w);
      if (s == Step::kDone) progress = true;
      if (s == Step::kInvalid) invalid = true;
      if (s != Step::kWait) continue;
      if (pending_.size() >= opt_.max_pending_ops) {
        overflow = true;
        continue;
      }
      w.owned.assign(w.text);
      w.text = {};
      pending_.push_back(std::move(w));
    }
    while (progress && !pending_.empty()) {
      progress = false;
      std::vector<WireOp> keep;
      for (WireOp& w : pending_) {
        Step s = TryIntegrate(w);
        if (s == Step::kDone) progress = true;
        if (s == Step::kInvalid) invalid = true;
        if (s == Step::kWait) keep.push_back(std::move(w));
      }
      pending_ = std::move(keep);
    }
    if (overflow) {
      return Fail(errc::too_many_pending,
                  "too many operations wait for missing dependencies; resend from this replica's version");
    }
    if (invalid) {
      return Fail(errc::bad_encoding, "some operations contradict this note's history and were ignored");
    }
    return Ok();
  }
};

}  // namespace detail

Doc::Doc(DocOptions options) : impl_(std::make_unique<detail::DocImpl>(std::move(options))) {}
Doc::~Doc() = default;
Doc::Doc(Doc&&) noexcept = default;
Doc& Doc::operator=(Doc&&) noexcept = default;

Result<Doc> Doc::Load(std::string_view snapshot, DocOptions options) {
  if (options.agent.empty() || options.agent.size() > kMaxAgentBytes) {
    return Fail(errc::bad_agent, "the agent name must have 1 to 64 bytes");
  }
  Doc d(std::move(options));
  auto ops = d.impl_->Parse(snapshot, kSnapshotMagic);
  if (!ops) return ops.error();
  HUB_TRY(d.impl_->ApplyOps(std::move(*ops)));
  if (!d.impl_->pending_.empty()) {
    return Fail(errc::bad_encoding, "the snapshot is inconsistent: operations miss their dependencies");
  }
  return d;
}

std::string Doc::Save() const { return impl_->Encode(Version{}, kSnapshotMagic); }
Version Doc::version() const { return impl_->CurrentVersion(); }
std::string Doc::Text() const { return impl_->TextOf(nullptr); }
uint64_t Doc::Length() const { return impl_->tree_.total().vis; }
uint64_t Doc::Size() const { return impl_->tree_.total().bytes; }

Result<std::string> Doc::TextAt(const Version& v) const {
  auto vv = impl_->ToVector(v);
  if (!vv) return vv.error();
  if (*vv == impl_->Seen()) return Text();
  HUB_TRY(impl_->CheckClosed(*vv));
  detail::View view = impl_->MakeView(*vv);
  return impl_->TextOf(&view);
}

Result<Version> Doc::Apply(const Version& base, std::span<const Edit> edits) {
  HUB_TRY(impl_->Apply(&base, edits));
  return version();
}

Result<Version> Doc::Apply(const Version& base, std::span<const Edit> edits, std::string_view agent) {
  if (agent.empty() || agent.size() > kMaxAgentBytes) {
    return Fail(errc::bad_agent, "an agent name has 1 to 64 bytes");
  }
  auto& d = *impl_;
  uint32_t saved = d.local_;
  d.local_ = d.Intern(std::string(agent));
  auto r = d.Apply(&base, edits);
  d.local_ = saved;
  HUB_TRY(r);
  return version();
}

Result<std::vector<Edit>> Doc::ChangesSince(const Version& since) const {
  auto vv = impl_->ToVector(since);
  if (!vv) return vv.error();
  if (*vv == impl_->Seen()) return std::vector<Edit>{};
  HUB_TRY(impl_->CheckClosed(*vv));
  detail::View view = impl_->MakeView(*vv);
  return impl_->ChangesFrom(view);
}
Result<void> Doc::Apply(std::span<const Edit> edits) { return impl_->Apply(nullptr, edits); }

std::string Doc::EncodeOps(const Version& since) const { return impl_->Encode(since, kOpsMagic); }

Result<void> Doc::ApplyRemote(std::string_view bytes) {
  auto ops = impl_->Parse(bytes, kOpsMagic);
  if (!ops) return ops.error();
  return impl_->ApplyOps(std::move(*ops));
}

size_t Doc::pending() const { return impl_->pending_.size(); }

Doc::Stats Doc::stats() const {
  const auto& d = *impl_;
  Stats s;
  s.runs = d.tree_.runs();
  s.op_runs = d.log_.size();
  s.items = d.tree_.total().all;
  s.memory_bytes = d.tree_.MemoryBytes() + d.content_.capacity() +
                   d.log_.capacity() * sizeof(detail::OpRun) + d.parents_.capacity() * sizeof(detail::Id);
  for (const auto& a : d.agents_) s.memory_bytes += sizeof(a) + a.name.capacity() + a.ops.capacity() * 4;
  return s;
}

}  // namespace hub::notes
