#include "cluster/mdns/dns.h"

#include <algorithm>
#include <map>
#include <string>

namespace hub::cluster::mdns {
namespace {

class Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "mdns"; }
  std::string message(int c) const override {
    switch (static_cast<errc>(c)) {
      case errc::truncated: return "DNS message truncated";
      case errc::bad_name: return "malformed DNS name";
      case errc::bad_pointer: return "bad DNS name compression pointer";
      case errc::bad_rdata: return "malformed DNS record data";
      case errc::too_large: return "DNS message too large";
      case errc::socket: return "mDNS socket error";
    }
    return "unknown mDNS error";
  }
};

Error Fail(errc e, std::string what) { return MakeError(make_error_code(e), std::move(what)); }

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// ---- decoding ---------------------------------------------------------------

class Reader {
 public:
  explicit Reader(std::span<const uint8_t> b) : b_(b) {}
  size_t pos() const { return pos_; }
  size_t size() const { return b_.size(); }
  bool Has(size_t n) const { return n <= b_.size() - pos_; }
  uint8_t U8() { return b_[pos_++]; }
  uint16_t U16() {
    uint16_t v = static_cast<uint16_t>(b_[pos_] << 8 | b_[pos_ + 1]);
    pos_ += 2;
    return v;
  }
  uint32_t U32() {
    uint32_t hi = U16();
    return hi << 16 | U16();
  }
  void Skip(size_t n) { pos_ += n; }
  const uint8_t* Here() const { return b_.data() + pos_; }

  // Reads a possibly compressed name starting at pos(); pos() ends after its
  // in-place bytes. A pointer must target an offset before the start of the
  // segment that contains it: encoders only point at names already written,
  // and the rule makes every loop (and every forward pointer) an error while
  // bounding the work by the message length.
  Result<Name> ReadName() {
    Name out;
    size_t wire = 1;              // the root octet
    size_t p = pos_;
    size_t segment_start = pos_;
    bool jumped = false;
    for (;;) {
      if (p >= b_.size()) return Fail(errc::truncated, "name runs past the end of the message");
      uint8_t len = b_[p];
      if ((len & 0xC0) == 0xC0) {
        if (p + 1 >= b_.size()) return Fail(errc::truncated, "compression pointer cut off");
        size_t target = static_cast<size_t>(len & 0x3F) << 8 | b_[p + 1];
        if (target >= segment_start) return Fail(errc::bad_pointer, "compression pointer does not point backwards");
        if (target < 12) return Fail(errc::bad_pointer, "compression pointer into the header");
        if (!jumped) pos_ = p + 2;
        jumped = true;
        p = segment_start = target;
        continue;
      }
      if ((len & 0xC0) != 0) return Fail(errc::bad_name, "reserved label type");
      if (len == 0) {
        if (!jumped) pos_ = p + 1;
        return out;
      }
      if (len > b_.size() - p - 1) return Fail(errc::truncated, "label runs past the end of the message");
      wire += 1 + len;
      if (wire > kMaxName) return Fail(errc::bad_name, "name longer than 255 bytes");
      out.emplace_back(reinterpret_cast<const char*>(b_.data() + p + 1), len);
      p += 1 + len;
    }
  }

 private:
  std::span<const uint8_t> b_;
  size_t pos_ = 0;
};

Result<Rdata> ReadRdata(Reader& r, uint16_t type, size_t len) {
  const size_t end = r.pos() + len;
  auto must_end = [&](Rdata v) -> Result<Rdata> {
    if (r.pos() != end) return Fail(errc::bad_rdata, "record data length does not match its content");
    return v;
  };
  switch (type) {
    case kA: {
      if (len != 4) return Fail(errc::bad_rdata, "A record data is not 4 bytes");
      Ipv4 a{r.U8(), r.U8(), r.U8(), r.U8()};
      return Rdata{a};
    }
    case kPtr: {
      auto n = r.ReadName();
      if (!n) return n.error();
      return must_end(Rdata{std::move(*n)});
    }
    case kSrv: {
      if (len < 7) return Fail(errc::bad_rdata, "SRV record data too short");
      Srv s;
      s.priority = r.U16();
      s.weight = r.U16();
      s.port = r.U16();
      auto n = r.ReadName();
      if (!n) return n.error();
      s.target = std::move(*n);
      return must_end(Rdata{std::move(s)});
    }
    case kTxt: {
      Txt t;
      while (r.pos() < end) {
        size_t n = r.U8();
        if (n > end - r.pos()) return Fail(errc::bad_rdata, "TXT string runs past its record");
        t.strings.emplace_back(reinterpret_cast<const char*>(r.Here()), n);
        r.Skip(n);
      }
      return Rdata{std::move(t)};
    }
    case kNsec: {
      Nsec s;
      auto n = r.ReadName();
      if (!n) return n.error();
      if (r.pos() > end) return Fail(errc::bad_rdata, "NSEC next name runs past its record");
      s.next = std::move(*n);
      int last_window = -1;
      while (r.pos() < end) {
        if (end - r.pos() < 2) return Fail(errc::bad_rdata, "NSEC bitmap cut off");
        int window = r.U8();
        size_t blen = r.U8();
        if (window <= last_window || blen == 0 || blen > 32 || blen > end - r.pos())
          return Fail(errc::bad_rdata, "bad NSEC type bitmap");
        last_window = window;
        for (size_t i = 0; i < blen; ++i) {
          uint8_t bits = r.U8();
          for (int b = 0; b < 8; ++b)
            if (bits & (0x80 >> b)) s.types.push_back(static_cast<uint16_t>(window * 256 + i * 8 + b));
        }
      }
      return Rdata{std::move(s)};
    }
    default: {
      Raw raw(r.Here(), r.Here() + len);
      r.Skip(len);
      return Rdata{std::move(raw)};
    }
  }
}

Result<Record> ReadRecord(Reader& r) {
  Record rec;
  auto n = r.ReadName();
  if (!n) return n.error();
  rec.name = std::move(*n);
  if (!r.Has(10)) return Fail(errc::truncated, "record header cut off");
  rec.type = r.U16();
  uint16_t cls = r.U16();
  rec.cache_flush = (cls & 0x8000) != 0;
  rec.rclass = cls & 0x7FFF;
  rec.ttl = r.U32();
  size_t len = r.U16();
  if (!r.Has(len)) return Fail(errc::truncated, "record data runs past the end of the message");
  auto d = ReadRdata(r, rec.type, len);
  if (!d) return d.error();
  rec.data = std::move(*d);
  return rec;
}

// ---- encoding ---------------------------------------------------------------

Result<void> CheckName(const Name& n) {
  size_t wire = 1;
  for (const auto& l : n) {
    if (l.empty()) return Fail(errc::bad_name, "empty label in name " + ToString(n));
    if (l.size() > kMaxLabel) return Fail(errc::bad_name, "label longer than 63 bytes in " + ToString(n));
    wire += 1 + l.size();
  }
  if (wire > kMaxName) return Fail(errc::bad_name, "name longer than 255 bytes: " + ToString(n));
  return Ok();
}

class Writer {
 public:
  std::vector<uint8_t>& out() { return out_; }
  void U8(uint8_t v) { out_.push_back(v); }
  void U16(uint16_t v) {
    out_.push_back(static_cast<uint8_t>(v >> 8));
    out_.push_back(static_cast<uint8_t>(v));
  }
  void U32(uint32_t v) {
    U16(static_cast<uint16_t>(v >> 16));
    U16(static_cast<uint16_t>(v));
  }
  void Bytes(const void* p, size_t n) {
    auto* c = static_cast<const uint8_t*>(p);
    out_.insert(out_.end(), c, c + n);
  }

  // Suffixes already written are remembered by their exact bytes (case
  // preserved, so decoding never changes the case of a label).
  Result<void> Name(const mdns::Name& n, bool compress) {
    HUB_TRY(CheckName(n));
    for (size_t i = 0; i < n.size(); ++i) {
      std::string key;
      for (size_t j = i; j < n.size(); ++j) {
        key.push_back(static_cast<char>(n[j].size()));
        key += n[j];
      }
      if (compress) {
        auto it = suffixes_.find(key);
        if (it != suffixes_.end()) {
          U16(static_cast<uint16_t>(0xC000 | it->second));
          return Ok();
        }
      }
      if (out_.size() < 0x3FFF) suffixes_.emplace(std::move(key), static_cast<uint16_t>(out_.size()));
      U8(static_cast<uint8_t>(n[i].size()));
      Bytes(n[i].data(), n[i].size());
    }
    U8(0);
    return Ok();
  }

 private:
  std::vector<uint8_t> out_;
  std::map<std::string, uint16_t> suffixes_;
};

template <class... F>
struct Overloaded : F... { using F::operator()...; };
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

bool Matches(uint16_t type, const Rdata& d) {
  switch (d.index()) {
    case 0: return true;
    case 1: return type == kA;
    case 2: return type == kPtr;
    case 3: return type == kSrv;
    case 4: return type == kTxt;
    case 5: return type == kNsec;
  }
  return false;
}

// `w` may be a fresh Writer (for RdataBytes) or the message's (compressing).
Result<void> WriteRdata(Writer& w, const Record& r, bool compress) {
  if (!Matches(r.type, r.data)) return Fail(errc::bad_rdata, "record data does not match its type");
  return std::visit(
      Overloaded{
          [&](const Raw& raw) -> Result<void> {
            w.Bytes(raw.data(), raw.size());
            return Ok();
          },
          [&](const Ipv4& a) -> Result<void> {
            w.Bytes(a.data(), a.size());
            return Ok();
          },
          [&](const mdns::Name& n) -> Result<void> { return w.Name(n, compress); },
          [&](const Srv& s) -> Result<void> {
            w.U16(s.priority);
            w.U16(s.weight);
            w.U16(s.port);
            return w.Name(s.target, compress);
          },
          [&](const Txt& t) -> Result<void> {
            if (t.strings.empty()) w.U8(0);   // RFC 6763 §6.1: never an empty rdata
            for (const auto& s : t.strings) {
              if (s.size() > 255) return Fail(errc::bad_rdata, "TXT string longer than 255 bytes");
              w.U8(static_cast<uint8_t>(s.size()));
              w.Bytes(s.data(), s.size());
            }
            return Ok();
          },
          [&](const Nsec& s) -> Result<void> {
            HUB_TRY(w.Name(s.next, false));
            std::vector<uint16_t> types = s.types;
            std::sort(types.begin(), types.end());
            types.erase(std::unique(types.begin(), types.end()), types.end());
            for (size_t i = 0; i < types.size();) {
              int window = types[i] >> 8;
              uint8_t bits[32] = {};
              size_t used = 0;
              for (; i < types.size() && (types[i] >> 8) == window; ++i) {
                int low = types[i] & 0xFF;
                bits[low / 8] |= static_cast<uint8_t>(0x80 >> (low % 8));
                used = static_cast<size_t>(low / 8 + 1);
              }
              w.U8(static_cast<uint8_t>(window));
              w.U8(static_cast<uint8_t>(used));
              w.Bytes(bits, used);
            }
            return Ok();
          },
      },
      r.data);
}

Result<void> WriteRecord(Writer& w, const Record& r) {
  HUB_TRY(w.Name(r.name, true));
  w.U16(r.type);
  w.U16(static_cast<uint16_t>((r.rclass & 0x7FFF) | (r.cache_flush ? 0x8000 : 0)));
  w.U32(r.ttl);
  size_t len_at = w.out().size();
  w.U16(0);
  HUB_TRY(WriteRdata(w, r, true));
  size_t len = w.out().size() - len_at - 2;
  if (len > 0xFFFF) return Fail(errc::too_large, "record data longer than 65535 bytes");
  w.out()[len_at] = static_cast<uint8_t>(len >> 8);
  w.out()[len_at + 1] = static_cast<uint8_t>(len);
  return Ok();
}

}  // namespace

const std::error_category& category() {
  static const Category c;
  return c;
}

Name MakeName(std::string_view dotted) {
  Name n;
  size_t start = 0;
  while (start < dotted.size()) {
    size_t dot = dotted.find('.', start);
    if (dot == std::string_view::npos) dot = dotted.size();
    if (dot > start) n.emplace_back(dotted.substr(start, dot - start));
    start = dot + 1;
  }
  return n;
}

bool SameName(const Name& a, const Name& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].size() != b[i].size()) return false;
    for (size_t j = 0; j < a[i].size(); ++j)
      if (Lower(a[i][j]) != Lower(b[i][j])) return false;
  }
  return true;
}

std::string ToString(const Name& n) {
  if (n.empty()) return ".";
  std::string s;
  for (size_t i = 0; i < n.size(); ++i) {
    if (i) s.push_back('.');
    for (char c : n[i]) {
      if (c == '.' || c == '\\') s.push_back('\\');
      s.push_back(c);
    }
  }
  return s;
}

Result<Message> Decode(std::span<const uint8_t> bytes) {
  if (bytes.size() > 65535) return Fail(errc::too_large, "DNS message longer than 65535 bytes");
  Reader r(bytes);
  if (!r.Has(12)) return Fail(errc::truncated, "DNS header cut off");
  Message m;
  m.id = r.U16();
  m.flags = r.U16();
  const uint16_t counts[4] = {r.U16(), r.U16(), r.U16(), r.U16()};
  // Every question takes at least 5 bytes and every record 11, so a count
  // beyond what is left is refused before anything is allocated for it.
  size_t need = counts[0] * size_t{5} + (counts[1] + size_t{counts[2]} + counts[3]) * 11;
  if (need > bytes.size() - 12) return Fail(errc::truncated, "section counts larger than the message");
  m.questions.reserve(counts[0]);
  for (int i = 0; i < counts[0]; ++i) {
    Question q;
    auto n = r.ReadName();
    if (!n) return n.error();
    q.name = std::move(*n);
    if (!r.Has(4)) return Fail(errc::truncated, "question cut off");
    q.type = r.U16();
    uint16_t cls = r.U16();
    q.unicast_response = (cls & 0x8000) != 0;
    q.qclass = cls & 0x7FFF;
    m.questions.push_back(std::move(q));
  }
  std::vector<Record>* sections[3] = {&m.answers, &m.authorities, &m.additionals};
  for (int s = 0; s < 3; ++s) {
    sections[s]->reserve(counts[s + 1]);
    for (int i = 0; i < counts[s + 1]; ++i) {
      auto rec = ReadRecord(r);
      if (!rec) return rec.error();
      sections[s]->push_back(std::move(*rec));
    }
  }
  return m;
}

Result<std::vector<uint8_t>> Encode(const Message& m, size_t max_size) {
  if (m.questions.size() > 0xFFFF || m.answers.size() > 0xFFFF || m.authorities.size() > 0xFFFF ||
      m.additionals.size() > 0xFFFF)
    return Fail(errc::too_large, "too many entries in a DNS section");
  Writer w;
  w.U16(m.id);
  w.U16(m.flags);
  w.U16(static_cast<uint16_t>(m.questions.size()));
  w.U16(static_cast<uint16_t>(m.answers.size()));
  w.U16(static_cast<uint16_t>(m.authorities.size()));
  w.U16(static_cast<uint16_t>(m.additionals.size()));
  auto too_large = [&] { return w.out().size() > max_size; };
  for (const auto& q : m.questions) {
    HUB_TRY(w.Name(q.name, true));
    w.U16(q.type);
    w.U16(static_cast<uint16_t>((q.qclass & 0x7FFF) | (q.unicast_response ? 0x8000 : 0)));
    if (too_large()) break;
  }
  for (const auto* sec : {&m.answers, &m.authorities, &m.additionals}) {
    for (const auto& r : *sec) {
      if (too_large()) break;
      HUB_TRY(WriteRecord(w, r));
    }
  }
  if (too_large()) return Fail(errc::too_large, "DNS message larger than " + std::to_string(max_size) + " bytes");
  return std::move(w.out());
}

std::vector<uint8_t> RdataBytes(const Record& r, bool fold_case) {
  Record copy;
  const Record* src = &r;
  if (fold_case) {
    copy = r;
    auto fold = [](Name& n) {
      for (auto& l : n)
        for (auto& c : l) c = Lower(c);
    };
    std::visit(Overloaded{[&](Name& n) { fold(n); }, [&](Srv& s) { fold(s.target); },
                          [&](Nsec& s) { fold(s.next); }, [](auto&) {}},
               copy.data);
    src = &copy;
  }
  Writer w;
  // Data that Encode would refuse still gets bytes (and a marker byte), so
  // comparisons stay total.
  if (!WriteRdata(w, *src, false)) w.out().push_back(0xFF);
  return std::move(w.out());
}

bool SameRecord(const Record& a, const Record& b) {
  return a.type == b.type && a.rclass == b.rclass && SameName(a.name, b.name) &&
         RdataBytes(a, true) == RdataBytes(b, true);
}

}  // namespace hub::cluster::mdns
