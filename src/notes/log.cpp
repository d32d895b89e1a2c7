#include "notes/log.h"

#include <array>
#include <limits>

namespace hub::notes {
namespace {

// ---- CRC-32C tables (slicing by 4) ----

constexpr uint32_t kCastagnoli = 0x82F63B78u;  // reflected

constexpr std::array<std::array<uint32_t, 256>, 4> MakeTables() {
  std::array<std::array<uint32_t, 256>, 4> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kCastagnoli : c >> 1;
    t[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; ++i) {
    for (size_t s = 1; s < 4; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFF];
  }
  return t;
}
constexpr auto kTables = MakeTables();

// ---- byte helpers (LEB128 varints, zigzag, length-prefixed strings) ----

void PutU32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

uint32_t GetU32(std::string_view b, size_t at) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(b[at + static_cast<size_t>(i)]);
  return v;
}

void PutVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void PutZigzag(std::string& out, int64_t v) {
  PutVarint(out, (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));
}

void PutStr(std::string& out, std::string_view s) {
  PutVarint(out, s.size());
  out.append(s);
}

void PutStamp(std::string& out, const Stamp& s) {
  out.push_back(s.set ? 1 : 0);
  PutZigzag(out, s.at_ms);
  PutStr(out, s.node);
}

// A bounds-checked cursor: after the first failure every read returns a
// zero value and ok() stays false.
class Cursor {
 public:
  explicit Cursor(std::string_view in) : in_(in) {}
  bool ok() const { return ok_; }
  bool done() const { return pos_ == in_.size(); }
  size_t pos() const { return pos_; }
  size_t left() const { return in_.size() - pos_; }
  // True when a failure was running out of input (not a bad value).
  bool short_input() const { return short_; }

  uint8_t Byte() {
    if (!ok_ || pos_ >= in_.size()) return Short<uint8_t>();
    return static_cast<uint8_t>(in_[pos_++]);
  }
  uint64_t Varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (!ok_ || pos_ >= in_.size()) return Short<uint64_t>();
      auto b = static_cast<uint8_t>(in_[pos_++]);
      if (shift == 63 && b > 1) return Bad<uint64_t>();
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
    return Bad<uint64_t>();
  }
  uint64_t Bounded(uint64_t max) {
    uint64_t v = Varint();
    return v > max ? Bad<uint64_t>() : v;
  }
  int64_t Zigzag() {
    uint64_t v = Varint();
    return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1);
  }
  bool Flag() {
    uint8_t b = Byte();
    if (b > 1) return Bad<bool>();
    return b == 1;
  }
  std::string_view Str(uint64_t max) {
    uint64_t n = Varint();
    if (!ok_) return {};
    if (n > max) return Bad<std::string_view>();
    if (n > left()) return Short<std::string_view>();
    std::string_view s = in_.substr(pos_, static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return s;
  }
  Stamp GetStamp() {
    Stamp s;
    s.set = Flag();
    s.at_ms = Zigzag();
    s.node = Str(kMaxAgentBytes);
    return s;
  }

 private:
  template <class T>
  T Short() {
    if (ok_) short_ = true;
    ok_ = false;
    return T{};
  }
  template <class T>
  T Bad() {
    ok_ = false;
    return T{};
  }

  std::string_view in_;
  size_t pos_ = 0;
  bool ok_ = true;
  bool short_ = false;
};

Error BadEncoding(std::string what) {
  return MakeError(make_error_code(errc::bad_encoding), std::move(what));
}

constexpr uint64_t kSnapshotFormat = 1;

// A valid record starting at `at`? (for telling damage from a torn tail)
bool GoodRecordAt(std::string_view b, size_t at, uint64_t max, size_t* need) {
  *need = 0;
  if (b.size() - at < kRecordHeaderBytes) {
    *need = kRecordHeaderBytes;
    return false;
  }
  uint32_t len = GetU32(b, at);
  if (len == 0 || len > max) return false;
  if (b.size() - at - kRecordHeaderBytes < len) {
    *need = kRecordHeaderBytes + len;
    return false;
  }
  return Crc32c(b.substr(at + kRecordHeaderBytes, len)) == GetU32(b, at + 4);
}

}  // namespace

uint32_t Crc32c(std::string_view data, uint32_t crc) {
  crc = ~crc;
  const auto* p = reinterpret_cast<const uint8_t*>(data.data());
  size_t n = data.size();
  while (n >= 4) {
    crc ^= uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 24);
    crc = kTables[3][crc & 0xFF] ^ kTables[2][(crc >> 8) & 0xFF] ^ kTables[1][(crc >> 16) & 0xFF] ^
          kTables[0][crc >> 24];
    p += 4;
    n -= 4;
  }
  while (n--) crc = (crc >> 8) ^ kTables[0][(crc ^ *p++) & 0xFF];
  return ~crc;
}

// ---- log files ----

std::string EncodeLogHeader(std::string_view node) {
  std::string out(kLogMagic);
  PutStr(out, node);
  return out;
}

ParseStatus ParseLogHeader(std::string_view bytes, std::string* node, size_t* header_bytes) {
  size_t m = std::min(bytes.size(), kLogMagic.size());
  if (bytes.substr(0, m) != kLogMagic.substr(0, m)) return ParseStatus::kBad;
  if (m < kLogMagic.size()) return ParseStatus::kIncomplete;
  Cursor c(bytes.substr(kLogMagic.size()));
  std::string_view name = c.Str(kMaxAgentBytes);
  if (!c.ok()) return c.short_input() ? ParseStatus::kIncomplete : ParseStatus::kBad;
  if (name.empty()) return ParseStatus::kBad;
  *node = std::string(name);
  *header_bytes = kLogMagic.size() + c.pos();
  return ParseStatus::kOk;
}

void AppendLogRecord(std::string& out, std::string_view payload) {
  PutU32(out, static_cast<uint32_t>(payload.size()));
  PutU32(out, Crc32c(payload));
  out.append(payload);
}

LogScan ScanLogRecords(std::string_view bytes, uint64_t max_record_bytes) {
  LogScan s;
  max_record_bytes = std::min<uint64_t>(max_record_bytes, std::numeric_limits<uint32_t>::max());
  size_t pos = 0;
  while (true) {
    size_t left = bytes.size() - pos;
    if (left == 0) {
      s.stop = LogStop::kEnd;
      break;
    }
    if (left < kRecordHeaderBytes) {
      s.stop = LogStop::kIncomplete;
      s.need = kRecordHeaderBytes;
      break;
    }
    uint32_t len = GetU32(bytes, pos);
    if (len == 0 || len > max_record_bytes) {
      s.stop = LogStop::kBadTail;  // nothing after it can be located
      break;
    }
    if (left - kRecordHeaderBytes < len) {
      s.stop = LogStop::kIncomplete;
      s.need = kRecordHeaderBytes + len;
      break;
    }
    std::string_view payload = bytes.substr(pos + kRecordHeaderBytes, len);
    if (Crc32c(payload) != GetU32(bytes, pos + 4)) {
      size_t next = pos + kRecordHeaderBytes + len, need = 0;
      if (GoodRecordAt(bytes, next, max_record_bytes, &need)) {
        s.stop = LogStop::kCorrupt;
      } else {
        s.stop = LogStop::kBadTail;
        s.need = need ? kRecordHeaderBytes + len + need : 0;
      }
      break;
    }
    s.records.push_back(payload);
    pos += kRecordHeaderBytes + len;
  }
  s.end = pos;
  return s;
}

// ---- record payloads ----

bool IsKnownRecordType(RecordType t) {
  return t >= RecordType::kCreate && t <= RecordType::kRestore;
}

bool IsValidUid(std::string_view uid) {
  if (uid.empty() || uid.size() > kMaxUidBytes) return false;
  for (char ch : uid) {
    auto u = static_cast<uint8_t>(ch);
    if (u <= 0x20 || u >= 0x7F) return false;
  }
  return true;
}

std::string EncodeRecord(const LogRecord& r) {
  std::string out;
  out.push_back(static_cast<char>(r.type));
  switch (r.type) {
    case RecordType::kCreate:
    case RecordType::kTitle:
      PutStr(out, r.title);
      PutZigzag(out, r.at_ms);
      PutStr(out, r.author);
      break;
    case RecordType::kOps:
      PutZigzag(out, r.at_ms);
      PutStr(out, r.author);
      PutStr(out, r.version);
      PutVarint(out, r.size);
      PutStr(out, r.ops);
      if (!r.uid.empty()) {
        PutStr(out, r.uid);
        PutVarint(out, r.length);
      }
      break;
    case RecordType::kDelete:
    case RecordType::kRestore:
      PutZigzag(out, r.at_ms);
      PutStr(out, r.author);
      break;
  }
  return out;
}

Result<LogRecord> DecodeRecord(std::string_view payload) {
  Cursor c(payload);
  LogRecord r;
  r.type = static_cast<RecordType>(c.Byte());
  if (!c.ok()) return BadEncoding("empty log record");
  switch (r.type) {
    case RecordType::kCreate:
    case RecordType::kTitle:
      r.title = c.Str(kMaxTitleBytes);
      r.at_ms = c.Zigzag();
      r.author = c.Str(kMaxAuthorBytes);
      break;
    case RecordType::kOps:
      r.at_ms = c.Zigzag();
      r.author = c.Str(kMaxAuthorBytes);
      r.version = c.Str(c.left());  // grows with the agents: bounded by the record
      r.size = c.Varint();
      r.ops = c.Str(c.left());
      if (c.ok() && !c.done()) {  // newer records: the idempotency key
        r.uid = c.Str(kMaxUidBytes);
        r.length = c.Varint();
        if (c.ok() && !IsValidUid(r.uid)) return BadEncoding("malformed uid in an ops record");
      }
      break;
    case RecordType::kDelete:
    case RecordType::kRestore:
      r.at_ms = c.Zigzag();
      r.author = c.Str(kMaxAuthorBytes);
      break;
    default:
      return r;  // a newer writer's record: the caller skips it
  }
  if (!c.ok() || !c.done()) {
    return BadEncoding("malformed log record of type " +
                       std::to_string(static_cast<int>(r.type)));
  }
  return r;
}

// ---- metadata ----

bool ApplyToMeta(NoteMeta& meta, const LogRecord& r, std::string_view node) {
  bool changed = false;
  if (meta.updated_at.YieldsTo(r.at_ms, node)) {
    meta.updated_at = Stamp{r.at_ms, std::string(node), true};
    meta.updated_by = r.author;
  }
  switch (r.type) {
    case RecordType::kCreate:
      if (!meta.created || r.at_ms < meta.created_ms) {
        changed = true;
        meta.created = true;
        meta.created_ms = r.at_ms;
      }
      [[fallthrough]];
    case RecordType::kTitle:
      if (meta.title_at.YieldsTo(r.at_ms, node)) {
        changed |= meta.title != r.title;
        meta.title = r.title;
        meta.title_at = Stamp{r.at_ms, std::string(node), true};
      }
      break;
    case RecordType::kDelete:
    case RecordType::kRestore:
      if (meta.deleted_at.YieldsTo(r.at_ms, node)) {
        bool deleted = r.type == RecordType::kDelete;
        changed |= meta.deleted != deleted;
        meta.deleted = deleted;
        meta.deleted_at = Stamp{r.at_ms, std::string(node), true};
      }
      break;
    case RecordType::kOps:
      break;
  }
  return changed;
}

// ---- snapshots ----

std::string EncodeSnapshot(const std::vector<std::pair<std::string, uint64_t>>& covered,
                           const NoteMeta& meta, const std::vector<Revision>& revisions,
                           std::string_view doc, const std::vector<UidOutcome>& uids) {
  std::string out(kSnapshotMagic);
  PutVarint(out, kSnapshotFormat);
  PutVarint(out, covered.size());
  for (const auto& [node, offset] : covered) {
    PutStr(out, node);
    PutVarint(out, offset);
  }
  out.push_back(meta.created ? 1 : 0);
  PutZigzag(out, meta.created_ms);
  PutStr(out, meta.title);
  PutStamp(out, meta.title_at);
  out.push_back(meta.deleted ? 1 : 0);
  PutStamp(out, meta.deleted_at);
  PutStamp(out, meta.updated_at);
  PutStr(out, meta.updated_by);
  PutVarint(out, revisions.size());
  for (const Revision& r : revisions) {
    PutZigzag(out, r.at_ms);
    PutStr(out, r.author);
    PutStr(out, r.node);
    PutVarint(out, r.size);
    PutStr(out, r.version);
  }
  PutStr(out, doc);
  if (!uids.empty()) {
    PutVarint(out, uids.size());
    for (const UidOutcome& u : uids) {
      PutStr(out, u.uid);
      PutStr(out, u.version);
      PutVarint(out, u.size);
      PutVarint(out, u.length);
    }
  }
  PutU32(out, Crc32c(out));
  return out;
}

namespace {
// Reads magic, format and coverage; leaves `c` after them.
ParseStatus ReadCoverage(std::string_view bytes, Cursor& c,
                         std::vector<std::pair<std::string, uint64_t>>* covered) {
  size_t m = std::min(bytes.size(), kSnapshotMagic.size());
  if (bytes.substr(0, m) != kSnapshotMagic.substr(0, m)) return ParseStatus::kBad;
  if (m < kSnapshotMagic.size()) return ParseStatus::kIncomplete;
  c = Cursor(bytes.substr(kSnapshotMagic.size()));
  uint64_t format = c.Varint();
  if (c.ok() && format != kSnapshotFormat) return ParseStatus::kBad;
  // Each entry takes at least 2 bytes: the count cannot exceed what could follow.
  uint64_t n = c.Bounded(1 << 16);
  covered->clear();
  for (uint64_t i = 0; i < n && c.ok(); ++i) {
    std::string_view node = c.Str(kMaxAgentBytes);
    uint64_t offset = c.Varint();
    if (c.ok() && node.empty()) return ParseStatus::kBad;
    if (c.ok()) covered->emplace_back(std::string(node), offset);
  }
  if (!c.ok()) return c.short_input() ? ParseStatus::kIncomplete : ParseStatus::kBad;
  return ParseStatus::kOk;
}
}  // namespace

ParseStatus DecodeSnapshotCoverage(std::string_view prefix,
                                   std::vector<std::pair<std::string, uint64_t>>* covered) {
  Cursor c(prefix);
  return ReadCoverage(prefix, c, covered);
}

Result<SnapshotData> DecodeSnapshot(std::string_view bytes) {
  if (bytes.size() < kSnapshotMagic.size() + 4) return BadEncoding("snapshot too short");
  std::string_view body = bytes.substr(0, bytes.size() - 4);
  if (Crc32c(body) != GetU32(bytes, bytes.size() - 4)) {
    return BadEncoding("snapshot checksum mismatch");
  }
  SnapshotData s;
  Cursor c(body);
  if (ReadCoverage(body, c, &s.covered) != ParseStatus::kOk) {
    return BadEncoding("malformed snapshot header");
  }
  NoteMeta& m = s.meta;
  m.created = c.Flag();
  m.created_ms = c.Zigzag();
  m.title = c.Str(kMaxTitleBytes);
  m.title_at = c.GetStamp();
  m.deleted = c.Flag();
  m.deleted_at = c.GetStamp();
  m.updated_at = c.GetStamp();
  m.updated_by = c.Str(kMaxAuthorBytes);
  // A revision takes at least 5 bytes: never reserve from the count.
  uint64_t n = c.Bounded(c.left() / 5);
  for (uint64_t i = 0; i < n && c.ok(); ++i) {
    Revision r;
    r.at_ms = c.Zigzag();
    r.author = c.Str(kMaxAuthorBytes);
    r.node = c.Str(kMaxAgentBytes);
    r.size = c.Varint();
    r.version = c.Str(c.left());
    if (c.ok()) s.revisions.push_back(std::move(r));
  }
  s.doc = c.Str(c.left());
  if (c.ok() && !c.done()) {  // recent idempotency keys (newer snapshots)
    // An entry takes at least 4 bytes: never reserve from the count.
    uint64_t k = c.Bounded(c.left() / 4);
    for (uint64_t i = 0; i < k && c.ok(); ++i) {
      UidOutcome u;
      u.uid = c.Str(kMaxUidBytes);
      u.version = c.Str(c.left());
      u.size = c.Varint();
      u.length = c.Varint();
      if (c.ok() && !IsValidUid(u.uid)) return BadEncoding("malformed uid in a snapshot");
      if (c.ok()) s.uids.push_back(std::move(u));
    }
  }
  if (!c.ok() || !c.done()) return BadEncoding("malformed snapshot");
  return s;
}

}  // namespace hub::notes
