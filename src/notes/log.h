#pragma once
// The notepad's on-storage formats, sans-IO: per-node log files of
// checksummed records, the record payloads, the notes' metadata registers
// (last writer wins) and the snapshot. Pure functions over bytes; the
// Notepad (notepad.h) does the I/O. Format: src/notes/README.md ("Storage").
//
// Nothing here trusts a length field: every length is bounded by the bytes
// left and by a maximum record size, and a reader never reads past its input.

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.h"
#include "notes/doc.h"
#include "notes/notepad.h"

namespace hub::notes {

// ---- CRC-32C (Castagnoli, reflected 0x82F63B78), as in iSCSI / ext4 ----

// `crc` is the value returned for the bytes before `data` (0 to start).
uint32_t Crc32c(std::string_view data, uint32_t crc = 0);

// ---- log files ----
// header: "HNL1" | varint n | n bytes node name (1..kMaxAgentBytes)
// record: u32 LE payload length (1..max) | u32 LE crc32c(payload) | payload

inline constexpr std::string_view kLogMagic{"HNL1", 4};
inline constexpr size_t kRecordHeaderBytes = 8;

std::string EncodeLogHeader(std::string_view node);

enum class ParseStatus : uint8_t {
  kOk,
  kIncomplete,  // a prefix of a valid header (a writer may be creating the file)
  kBad,         // not a log header
};
// Parses the header at the start of `bytes`; on kOk sets `node` and
// `header_bytes` (the offset of the first record).
ParseStatus ParseLogHeader(std::string_view bytes, std::string* node, size_t* header_bytes);

// Appends the framed `payload` (1..2^32-1 bytes) to `out`.
void AppendLogRecord(std::string& out, std::string_view payload);

enum class LogStop : uint8_t {
  kEnd,         // the input ends exactly after a record
  kIncomplete,  // the input ends inside a record (a writer mid-append, or a torn tail)
  kBadTail,     // a damaged record (checksum, or a length of 0 or over the maximum) with
                // nothing valid found after it: a torn tail, or damage more input may prove
  kCorrupt,     // a damaged record followed by a valid one: permanent damage
};

struct LogScan {
  std::vector<std::string_view> records;  // payloads of the good records, views into the input
  size_t end = 0;                         // offset just after the last good record
  LogStop stop = LogStop::kEnd;
  // For kIncomplete / kBadTail: how many bytes from `end` would let a new
  // scan decide more (0 = more input cannot help).
  size_t need = 0;
};

// Reads records from `bytes` (which starts at a record boundary) up to the
// first one that is incomplete or damaged.
LogScan ScanLogRecords(std::string_view bytes, uint64_t max_record_bytes);

// The largest record a notepad with this note size limit writes or accepts.
inline uint64_t MaxRecordBytes(uint64_t max_size_bytes) {
  return max_size_bytes * 2 + (1u << 20);
}

// ---- record payloads ----
// type byte, then per type (varint = LEB128, zvarint = zigzag LEB128,
// str = varint length + bytes):
//   1 create  : str title, zvarint at_ms, str author
//   2 ops     : zvarint at_ms, str author, str version token after, varint size after,
//               str ops (Doc::EncodeOps of just this change)
//               [, str uid (1..kMaxUidBytes), varint length after] — only for edits
//               given an idempotency key; older records end after ops
//   3 title   : str title, zvarint at_ms, str author
//   4 delete  : zvarint at_ms, str author
//   5 restore : zvarint at_ms, str author
// Unknown types decode as such (newer writers) and are skipped by readers.

enum class RecordType : uint8_t { kCreate = 1, kOps = 2, kTitle = 3, kDelete = 4, kRestore = 5 };

inline constexpr size_t kMaxAuthorBytes = 64;
inline constexpr size_t kMaxUidBytes = 64;

// An edit's idempotency key: 1..kMaxUidBytes printable ASCII, no space.
bool IsValidUid(std::string_view uid);

struct LogRecord {
  RecordType type = RecordType::kOps;
  int64_t at_ms = 0;
  std::string author;
  std::string title;    // create, title
  std::string version;  // ops
  uint64_t size = 0;    // ops
  std::string ops;      // ops
  std::string uid;      // ops: idempotency key ("" = none)
  uint64_t length = 0;  // ops with a uid: code points after
};

// What an edit with an idempotency key produced (kept to answer retries).
struct UidOutcome {
  std::string uid;
  std::string version;  // token after
  uint64_t size = 0, length = 0;
};

std::string EncodeRecord(const LogRecord& r);
// errc::bad_encoding when malformed (truncated, trailing bytes, a field over
// its bound); a well-formed record of an unknown type decodes with only
// `type` set.
Result<LogRecord> DecodeRecord(std::string_view payload);
bool IsKnownRecordType(RecordType t);

// ---- metadata: last writer wins by (at_ms, node) ----

struct Stamp {
  int64_t at_ms = 0;
  std::string node;
  bool set = false;
  // Whether a write stamped (at_ms, node) replaces this one. Equal stamps
  // replace: they come from one node's log, read in order.
  bool YieldsTo(int64_t at, std::string_view n) const {
    return !set || at > at_ms || (at == at_ms && n >= node);
  }
};

struct NoteMeta {
  bool created = false;
  int64_t created_ms = 0;
  std::string title;
  Stamp title_at;
  bool deleted = false;
  Stamp deleted_at;  // of the last delete or restore; deleted_ms = deleted_at.at_ms
  Stamp updated_at;  // of the last record of any kind
  std::string updated_by;
};

// Applies record `r` from `node`'s log. Returns true when the visible
// metadata (created, title, deleted) changed.
bool ApplyToMeta(NoteMeta& meta, const LogRecord& r, std::string_view node);

// ---- snapshots ----
// "HNP1" | varint format (1)
// | varint n, n × (str node, varint offset)     — log bytes covered, per log
// | meta: byte created, zvarint created_ms, str title, stamp title_at, byte deleted,
//         stamp deleted_at, stamp updated_at, str updated_by
//         (stamp = byte set, zvarint at_ms, str node)
// | varint n, n × revision (zvarint at_ms, str author, str node, varint size, str version)
// | str doc (Doc::Save)
// | [varint n, n × (str uid, str version, varint size, varint length)] — recent
//   idempotency keys, oldest first (absent in older snapshots)
// | u32 LE crc32c of everything before

inline constexpr std::string_view kSnapshotMagic{"HNP1", 4};

struct SnapshotData {
  std::vector<std::pair<std::string, uint64_t>> covered;
  NoteMeta meta;
  std::vector<Revision> revisions;
  std::string_view doc;  // into the decoded input
  std::vector<UidOutcome> uids;
};

std::string EncodeSnapshot(const std::vector<std::pair<std::string, uint64_t>>& covered,
                           const NoteMeta& meta, const std::vector<Revision>& revisions,
                           std::string_view doc, const std::vector<UidOutcome>& uids = {});
// Checks the checksum, then decodes; errc::bad_encoding when malformed.
Result<SnapshotData> DecodeSnapshot(std::string_view bytes);
// Decodes only the coverage from a prefix of a snapshot (to choose one
// without reading it all). kIncomplete when `prefix` is too short.
ParseStatus DecodeSnapshotCoverage(std::string_view prefix,
                                       std::vector<std::pair<std::string, uint64_t>>* covered);

}  // namespace hub::notes
