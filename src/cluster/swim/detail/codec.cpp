#include "cluster/swim/detail/codec.h"

#include <limits>
#include <string_view>

namespace hub::cluster::swim::detail {
namespace {

class Writer {
 public:
  explicit Writer(Bytes& out) : out_(out) {}
  void U8(uint8_t v) { out_.push_back(v); }
  void Varint(uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<uint8_t>(v | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<uint8_t>(v));
  }
  void Str(std::string_view s) {
    Varint(s.size());
    out_.insert(out_.end(), s.begin(), s.end());
  }

 private:
  Bytes& out_;
};

class Reader {
 public:
  Reader(const uint8_t* p, size_t n) : p_(p), end_(p + n) {}
  bool ok() const { return ok_; }
  bool done() const { return p_ == end_; }
  size_t left() const { return static_cast<size_t>(end_ - p_); }
  void Fail() { ok_ = false; p_ = end_; }

  uint8_t U8() {
    if (!ok_ || p_ == end_) return Fail(), 0;
    return *p_++;
  }
  uint64_t Varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      const uint8_t b = U8();
      if (!ok_) return 0;
      // The tenth byte may only carry the top bit of a 64-bit value.
      if (shift == 63 && b > 1) return Fail(), 0;
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    return Fail(), 0;
  }
  uint32_t U32() {
    const uint64_t v = Varint();
    if (v > std::numeric_limits<uint32_t>::max()) return Fail(), 0;
    return static_cast<uint32_t>(v);
  }
  bool Bool() {
    const uint8_t b = U8();
    if (b > 1) Fail();
    return b == 1;
  }
  std::string Str(size_t max) {
    const uint64_t n = Varint();
    if (!ok_ || n > max || n > left()) return Fail(), std::string();
    std::string s(reinterpret_cast<const char*>(p_), static_cast<size_t>(n));
    p_ += n;
    return s;
  }
  // A count of records that take at least `min_bytes` each: never more than
  // the input could hold, so callers may loop on it safely.
  uint64_t Count(size_t min_bytes) {
    const uint64_t n = Varint();
    if (!ok_ || n > left() / min_bytes) return Fail(), 0;
    return n;
  }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
  bool ok_ = true;
};

void PutEvent(Writer& w, const WireEvent& e) {
  w.Str(e.origin);
  w.Varint(e.boot);
  w.Varint(e.id);
  w.Varint(e.lamport);
  w.Str(e.type);
  w.Str(e.payload);
}

WireEvent GetEvent(Reader& r) {
  WireEvent e;
  e.origin = r.Str(kMaxName);
  e.boot = r.Varint();
  e.id = r.Varint();
  e.lamport = r.Varint();
  e.type = r.Str(kMaxEventType);
  e.payload = r.Str(kMaxPayloadWire);
  if (e.origin.empty() || e.type.empty()) r.Fail();
  return e;
}

struct BodyWriter {
  Writer& w;
  void operator()(const Ping& m) {
    w.Varint(m.seq);
    w.Str(m.target);
    w.Str(m.source_name);
    w.Str(m.source_addr);
  }
  void operator()(const PingReq& m) {
    w.Varint(m.seq);
    w.Str(m.target);
    w.Str(m.target_addr);
    w.U8(m.nack ? 1 : 0);
    w.Str(m.source_name);
    w.Str(m.source_addr);
  }
  void operator()(const Ack& m) { w.Varint(m.seq); }
  void operator()(const Nack& m) { w.Varint(m.seq); }
  void operator()(const Alive& m) {
    w.Varint(m.incarnation);
    w.Str(m.name);
    w.Str(m.addr);
    w.Str(m.meta);
    w.U8(m.protocol);
  }
  void operator()(const Suspect& m) {
    w.Varint(m.incarnation);
    w.Str(m.name);
    w.Str(m.from);
  }
  void operator()(const Dead& m) {
    w.Varint(m.incarnation);
    w.Str(m.name);
    w.Str(m.from);
  }
  void operator()(const WireEvent& m) { PutEvent(w, m); }
  void operator()(const PushPull& m) {
    w.U8(m.join ? 1 : 0);
    w.Varint(m.members.size());
    for (const MemberRecord& r : m.members) {
      w.Str(r.name);
      w.Str(r.addr);
      w.Str(r.meta);
      w.Varint(r.incarnation);
      w.U8(static_cast<uint8_t>(r.state));
      w.U8(r.protocol);
    }
    w.Str(m.user_state);
    w.Varint(m.events.size());
    for (const WireEvent& e : m.events) PutEvent(w, e);
    w.Varint(m.digest.size());
    for (const DigestEntry& d : m.digest) {
      w.Str(d.origin);
      w.Varint(d.boot);
      w.Varint(d.max_id);
      w.Varint(d.mask);
    }
  }
  void operator()(const Events& m) {
    w.Varint(m.events.size());
    for (const WireEvent& e : m.events) PutEvent(w, e);
  }
};

constexpr Type TypeOf(const Message& m) {
  constexpr Type kTypes[] = {Type::kPing,    Type::kPingReq, Type::kAck,   Type::kNack,
                             Type::kAlive,   Type::kSuspect, Type::kDead,  Type::kEvent,
                             Type::kPushPull, Type::kEvents};
  return kTypes[m.index()];
}

// Smallest encodings, to bound record counts by the bytes left.
constexpr size_t kMinMember = 6;
constexpr size_t kMinEvent = 7;
constexpr size_t kMinDigest = 4;

// Decodes into `m` (constructed in place by the caller, so large messages are
// not moved around); false when malformed.
bool DecodeBody(Type type, Reader& r, Message& m) {
  switch (type) {
    case Type::kPing: {
      Ping p;
      p.seq = r.U32();
      p.target = r.Str(kMaxName);
      p.source_name = r.Str(kMaxName);
      p.source_addr = r.Str(kMaxName);
      m = std::move(p);
      break;
    }
    case Type::kPingReq: {
      PingReq p;
      p.seq = r.U32();
      p.target = r.Str(kMaxName);
      p.target_addr = r.Str(kMaxName);
      p.nack = r.Bool();
      p.source_name = r.Str(kMaxName);
      p.source_addr = r.Str(kMaxName);
      if (p.target.empty() || p.target_addr.empty()) r.Fail();
      m = std::move(p);
      break;
    }
    case Type::kAck:
      m = Ack{r.U32()};
      break;
    case Type::kNack:
      m = Nack{r.U32()};
      break;
    case Type::kAlive: {
      Alive a;
      a.incarnation = r.U32();
      a.name = r.Str(kMaxName);
      a.addr = r.Str(kMaxName);
      a.meta = r.Str(kMaxMetaWire);
      a.protocol = r.U8();
      if (a.name.empty() || a.addr.empty()) r.Fail();
      m = std::move(a);
      break;
    }
    case Type::kSuspect: {
      Suspect s;
      s.incarnation = r.U32();
      s.name = r.Str(kMaxName);
      s.from = r.Str(kMaxName);
      if (s.name.empty() || s.from.empty()) r.Fail();
      m = std::move(s);
      break;
    }
    case Type::kDead: {
      Dead d;
      d.incarnation = r.U32();
      d.name = r.Str(kMaxName);
      d.from = r.Str(kMaxName);
      if (d.name.empty() || d.from.empty()) r.Fail();
      m = std::move(d);
      break;
    }
    case Type::kEvent:
      m = GetEvent(r);
      break;
    case Type::kPushPull: {
      PushPull p;
      p.join = r.Bool();
      for (uint64_t n = r.Count(kMinMember); n > 0 && r.ok(); --n) {
        MemberRecord rec;
        rec.name = r.Str(kMaxName);
        rec.addr = r.Str(kMaxName);
        rec.meta = r.Str(kMaxMetaWire);
        rec.incarnation = r.U32();
        const uint8_t state = r.U8();
        if (state > static_cast<uint8_t>(MemberState::kLeft)) r.Fail();
        rec.state = static_cast<MemberState>(state);
        rec.protocol = r.U8();
        if (rec.name.empty() || rec.addr.empty()) r.Fail();
        p.members.push_back(std::move(rec));
      }
      p.user_state = r.Str(std::numeric_limits<size_t>::max());
      for (uint64_t n = r.Count(kMinEvent); n > 0 && r.ok(); --n) p.events.push_back(GetEvent(r));
      for (uint64_t n = r.Count(kMinDigest); n > 0 && r.ok(); --n) {
        DigestEntry d;
        d.origin = r.Str(kMaxName);
        d.boot = r.Varint();
        d.max_id = r.Varint();
        d.mask = r.Varint();
        p.digest.push_back(std::move(d));
      }
      m = std::move(p);
      break;
    }
    case Type::kEvents: {
      Events e;
      for (uint64_t n = r.Count(kMinEvent); n > 0 && r.ok(); --n) e.events.push_back(GetEvent(r));
      m = std::move(e);
      break;
    }
    default:
      return false;
  }
  return r.ok();
}

}  // namespace

void EncodeMessage(const Message& m, Bytes& out) {
  Writer w(out);
  w.U8(static_cast<uint8_t>(TypeOf(m)));
  std::visit(BodyWriter{w}, m);
}

Bytes EncodeMessage(const Message& m) {
  Bytes out;
  EncodeMessage(m, out);
  return out;
}

Bytes EncodePacket(const Message& m) {
  Bytes out{kWireVersion};
  EncodeMessage(m, out);
  return out;
}

Bytes EncodeParts(const std::vector<Bytes>& parts) {
  Bytes out{kWireVersion};
  if (parts.size() == 1) {
    out.insert(out.end(), parts[0].begin(), parts[0].end());
    return out;
  }
  out.push_back(static_cast<uint8_t>(Type::kCompound));
  out.push_back(static_cast<uint8_t>(parts.size()));
  for (const Bytes& p : parts) {
    out.push_back(static_cast<uint8_t>(p.size() >> 8));
    out.push_back(static_cast<uint8_t>(p.size()));
    out.insert(out.end(), p.begin(), p.end());
  }
  return out;
}

std::optional<std::vector<Message>> DecodePacket(const uint8_t* data, size_t size) {
  Reader r(data, size);
  if (r.U8() != kWireVersion || !r.ok()) return std::nullopt;
  const auto type = static_cast<Type>(r.U8());
  if (!r.ok()) return std::nullopt;
  std::vector<Message> out;
  if (type != Type::kCompound) {
    out.emplace_back();
    if (!DecodeBody(type, r, out.back()) || !r.done()) return std::nullopt;
    return out;
  }
  const uint8_t count = r.U8();
  if (!r.ok() || count == 0) return std::nullopt;
  out.reserve(count);
  const uint8_t* p = data + 3;
  const uint8_t* end = data + size;
  for (int i = 0; i < count; ++i) {
    if (end - p < 2) return std::nullopt;
    const size_t len = (size_t{p[0]} << 8) | p[1];
    p += 2;
    if (len < 1 || static_cast<size_t>(end - p) < len) return std::nullopt;
    const auto part_type = static_cast<Type>(p[0]);
    if (part_type == Type::kCompound) return std::nullopt;
    Reader part(p + 1, len - 1);
    out.emplace_back();
    if (!DecodeBody(part_type, part, out.back()) || !part.done()) return std::nullopt;
    p += len;
  }
  if (p != end) return std::nullopt;
  return out;
}

}  // namespace hub::cluster::swim::detail
