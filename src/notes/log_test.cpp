#include "notes/log.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

namespace hub::notes {
namespace {

LogRecord Ops(int64_t at, std::string author, std::string ops) {
  LogRecord r;
  r.type = RecordType::kOps;
  r.at_ms = at;
  r.author = std::move(author);
  r.version = "AQVub2RlLWEC";
  r.size = 42;
  r.ops = std::move(ops);
  return r;
}

LogRecord Meta(RecordType t, int64_t at, std::string title = {}) {
  LogRecord r;
  r.type = t;
  r.at_ms = at;
  r.author = "ann";
  r.title = std::move(title);
  return r;
}

std::vector<LogRecord> SampleRecords() {
  return {Meta(RecordType::kCreate, 1'700'000'000'000, "Shopping"),
          Ops(1'700'000'000'001, "ann", std::string("HNO\x01ops\0bytes", 13)),
          Meta(RecordType::kTitle, 1'700'000'000'002, "Shopping list ✓"),
          Ops(1'700'000'000'003, "bob", std::string(300, 'x')),
          Meta(RecordType::kDelete, 1'700'000'000'004),
          Meta(RecordType::kRestore, -5)};
}

struct Built {
  std::string bytes;
  size_t header = 0;
  std::vector<std::string> payloads;
  std::vector<size_t> ends;  // offset just after each record
};

Built BuildLog() {
  Built b;
  b.bytes = EncodeLogHeader("node-a");
  b.header = b.bytes.size();
  for (const LogRecord& r : SampleRecords()) {
    b.payloads.push_back(EncodeRecord(r));
    AppendLogRecord(b.bytes, b.payloads.back());
    b.ends.push_back(b.bytes.size());
  }
  return b;
}

constexpr uint64_t kMax = 1 << 20;

void ExpectSame(const LogRecord& a, const LogRecord& b) {
  EXPECT_EQ(a.type, b.type);
  EXPECT_EQ(a.at_ms, b.at_ms);
  EXPECT_EQ(a.author, b.author);
  EXPECT_EQ(a.title, b.title);
  if (a.type == RecordType::kOps) {
    EXPECT_EQ(a.version, b.version);
    EXPECT_EQ(a.size, b.size);
    EXPECT_EQ(a.ops, b.ops);
  }
}

TEST(Crc32c, KnownVectors) {
  EXPECT_EQ(Crc32c(""), 0u);
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);  // the CRC-32C check value
  std::string zeros(32, '\0');
  EXPECT_EQ(Crc32c(zeros), 0x8A9136AAu);  // RFC 3720 B.4
  // Incremental equals one shot, at every split.
  std::string s = "The quick brown fox jumps over the lazy dog";
  for (size_t i = 0; i <= s.size(); ++i) {
    EXPECT_EQ(Crc32c(std::string_view(s).substr(i), Crc32c(std::string_view(s).substr(0, i))),
              Crc32c(s));
  }
}

TEST(Log, RoundTrip) {
  Built b = BuildLog();
  std::string node;
  size_t header = 0;
  ASSERT_EQ(ParseLogHeader(b.bytes, &node, &header), ParseStatus::kOk);
  EXPECT_EQ(node, "node-a");
  EXPECT_EQ(header, b.header);
  LogScan s = ScanLogRecords(std::string_view(b.bytes).substr(header), kMax);
  EXPECT_EQ(s.stop, LogStop::kEnd);
  EXPECT_EQ(s.end, b.bytes.size() - header);
  ASSERT_EQ(s.records.size(), b.payloads.size());
  auto want = SampleRecords();
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(s.records[i], b.payloads[i]);
    auto r = DecodeRecord(s.records[i]);
    ASSERT_TRUE(r.ok()) << r.error().message;
    ExpectSame(*r, want[i]);
  }
}

TEST(Log, EveryTruncationReadsTheCompletePrefix) {
  Built b = BuildLog();
  for (size_t cut = 0; cut <= b.bytes.size(); ++cut) {
    std::string_view part = std::string_view(b.bytes).substr(0, cut);
    std::string node;
    size_t header = 0;
    ParseStatus ps = ParseLogHeader(part, &node, &header);
    if (cut < b.header) {
      EXPECT_EQ(ps, ParseStatus::kIncomplete) << cut;
      continue;
    }
    ASSERT_EQ(ps, ParseStatus::kOk) << cut;
    LogScan s = ScanLogRecords(part.substr(header), kMax);
    size_t complete = static_cast<size_t>(std::upper_bound(b.ends.begin(), b.ends.end(), cut) -
                                          b.ends.begin());
    ASSERT_EQ(s.records.size(), complete) << cut;
    for (size_t i = 0; i < complete; ++i) EXPECT_EQ(s.records[i], b.payloads[i]);
    size_t boundary = complete ? b.ends[complete - 1] : b.header;
    EXPECT_EQ(header + s.end, boundary) << cut;
    EXPECT_EQ(s.stop, cut == boundary ? LogStop::kEnd : LogStop::kIncomplete) << cut;
    if (s.stop == LogStop::kIncomplete) {
      EXPECT_GT(s.need, cut - boundary);
    }
  }
}

TEST(Log, AFlippedBitIsNeverMisread) {
  Built b = BuildLog();
  for (size_t i = 0; i < b.bytes.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string bad = b.bytes;
      bad[i] = static_cast<char>(bad[i] ^ (1 << bit));
      std::string node;
      size_t header = 0;
      ParseStatus ps = ParseLogHeader(bad, &node, &header);
      if (i < b.header) {
        // Damage to the header: refused, or a different name (the notepad
        // checks the name against the file's).
        EXPECT_FALSE(ps == ParseStatus::kOk && node == "node-a" && header == b.header);
        continue;
      }
      ASSERT_EQ(ps, ParseStatus::kOk);
      LogScan s = ScanLogRecords(std::string_view(bad).substr(header), kMax);
      size_t damaged = static_cast<size_t>(
          std::upper_bound(b.ends.begin(), b.ends.end(), i) - b.ends.begin());
      ASSERT_EQ(s.records.size(), damaged) << "byte " << i << " bit " << bit;
      for (size_t k = 0; k < damaged; ++k) EXPECT_EQ(s.records[k], b.payloads[k]);
      EXPECT_NE(s.stop, LogStop::kEnd);
      // Damage before the last record is proven by the good record after it.
      if (damaged + 1 < b.ends.size() && s.stop != LogStop::kIncomplete) {
        // A flipped length may hide the next record; a flipped checksum or
        // payload never does.
        size_t start = damaged ? b.ends[damaged - 1] : b.header;
        if (i >= start + 4) {
          EXPECT_EQ(s.stop, LogStop::kCorrupt) << i;
        }
      }
    }
  }
}

TEST(Log, BadTailAndCorruption) {
  Built b = BuildLog();
  std::string_view body = std::string_view(b.bytes).substr(b.header);
  // The last record's payload damaged: a bad tail (a writer may be mid-append).
  std::string last = std::string(body);
  last[last.size() - 1] ^= 1;
  LogScan s = ScanLogRecords(last, kMax);
  EXPECT_EQ(s.stop, LogStop::kBadTail);
  EXPECT_EQ(s.records.size(), b.payloads.size() - 1);
  // A good record after it would prove damage: at least its header is needed.
  EXPECT_EQ(s.need, b.ends[5] - b.ends[4] + kRecordHeaderBytes);
  // The first record damaged, good ones after: corruption.
  std::string first = std::string(body);
  first[9] ^= 1;
  s = ScanLogRecords(first, kMax);
  EXPECT_EQ(s.stop, LogStop::kCorrupt);
  EXPECT_TRUE(s.records.empty());
  EXPECT_EQ(s.end, 0u);
  // ... but with only part of the next record there, more input could tell.
  size_t next_end = b.ends[1] - b.header;
  s = ScanLogRecords(std::string_view(first).substr(0, next_end - 1), kMax);
  EXPECT_EQ(s.stop, LogStop::kBadTail);
  EXPECT_EQ(s.need, next_end);
  // Zeros (an NFS hole) are not empty records.
  s = ScanLogRecords(std::string(64, '\0'), kMax);
  EXPECT_EQ(s.stop, LogStop::kBadTail);
  EXPECT_TRUE(s.records.empty());
}

TEST(Log, HugeLengthField) {
  std::string log;
  AppendLogRecord(log, "\x04\x02\x03" "ann");
  size_t good = log.size();
  std::string huge("\xFF\xFF\xFF\xFF\x00\x00\x00\x00payload", 15);
  LogScan s = ScanLogRecords(log + huge, kMax);
  EXPECT_EQ(s.stop, LogStop::kBadTail);
  EXPECT_EQ(s.records.size(), 1u);
  EXPECT_EQ(s.end, good);
  // Just over the maximum, and at the maximum but incomplete.
  std::string over("\x01\x00\x10\x00", 4);  // 1 MiB + 1
  s = ScanLogRecords(over + "crc!" + "x", kMax);
  EXPECT_EQ(s.stop, LogStop::kBadTail);
  std::string at_max("\x00\x00\x10\x00", 4);  // 1 MiB
  s = ScanLogRecords(at_max + "crc!" + "x", kMax);
  EXPECT_EQ(s.stop, LogStop::kIncomplete);
  EXPECT_EQ(s.need, kMax + kRecordHeaderBytes);
}

TEST(Log, ChunkedReadingWithNeedMatchesWholeReading) {
  Built b = BuildLog();
  std::string body = b.bytes.substr(b.header);
  for (size_t chunk : {1, 3, 8, 50, 1000}) {
    std::vector<std::string> got;
    std::string buf;
    size_t fed = 0, need = 0;
    while (true) {
      size_t want = std::max(chunk, need);
      if (buf.size() < want && fed < body.size()) {
        size_t n = std::min(want - buf.size(), body.size() - fed);
        buf.append(body, fed, n);
        fed += n;
      }
      LogScan s = ScanLogRecords(buf, kMax);
      for (auto p : s.records) got.emplace_back(p);
      buf.erase(0, s.end);
      if (fed == body.size() && (s.stop == LogStop::kEnd || s.need <= buf.size())) break;
      need = s.stop == LogStop::kEnd ? 0 : s.need;
    }
    EXPECT_EQ(got, b.payloads) << chunk;
  }
}

TEST(Record, OpsUidIsATrailingOptionalField) {
  LogRecord r = Ops(5, "ann", "OPS");
  r.version = "v";
  r.size = 3;
  std::string old = EncodeRecord(r);  // no uid: the older format
  r.uid = "7f0c-uid";
  r.length = 2;
  std::string with = EncodeRecord(r);
  EXPECT_EQ(with.substr(0, old.size()), old);
  auto d = DecodeRecord(with);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->uid, "7f0c-uid");
  EXPECT_EQ(d->length, 2u);
  EXPECT_EQ(d->ops, "OPS");
  auto o = DecodeRecord(old);
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->uid, "");
  // Truncated inside the uid, or a bad one: malformed.
  EXPECT_FALSE(DecodeRecord(with.substr(0, with.size() - 2)).ok());
  r.uid = "bad uid";
  EXPECT_FALSE(DecodeRecord(EncodeRecord(r)).ok());
  EXPECT_TRUE(IsValidUid(std::string(64, 'a')));
  EXPECT_FALSE(IsValidUid(std::string(65, 'a')));
  EXPECT_FALSE(IsValidUid(""));
}

TEST(Snapshot, UidsRoundTripAndOlderSnapshotsHaveNone) {
  NoteMeta m;
  std::vector<UidOutcome> uids{{"u1", "v1", 1, 2}, {"u2", "v2", 3, 4}};
  std::string with = EncodeSnapshot({{"a", 10}}, m, {}, "DOC", uids);
  auto d = DecodeSnapshot(with);
  ASSERT_TRUE(d.ok()) << d.error().message;
  ASSERT_EQ(d->uids.size(), 2u);
  EXPECT_EQ(d->uids[1].uid, "u2");
  EXPECT_EQ(d->uids[1].version, "v2");
  EXPECT_EQ(d->uids[1].size, 3u);
  EXPECT_EQ(d->uids[1].length, 4u);
  EXPECT_EQ(d->doc, "DOC");
  auto old = DecodeSnapshot(EncodeSnapshot({{"a", 10}}, m, {}, "DOC"));
  ASSERT_TRUE(old.ok());
  EXPECT_TRUE(old->uids.empty());
}

TEST(Record, MalformedPayloads) {
  for (const LogRecord& r : SampleRecords()) {
    std::string p = EncodeRecord(r);
    for (size_t cut = 0; cut < p.size(); ++cut) {
      auto d = DecodeRecord(std::string_view(p).substr(0, cut));
      EXPECT_FALSE(d.ok()) << static_cast<int>(r.type) << " cut " << cut;
      if (!d.ok()) {
        EXPECT_EQ(d.code(), errc::bad_encoding);
      }
    }
    EXPECT_FALSE(DecodeRecord(p + "x").ok());
  }
  // Over-long fields.
  EXPECT_FALSE(DecodeRecord(EncodeRecord(Meta(RecordType::kTitle, 1, std::string(201, 't')))).ok());
  LogRecord long_author = Meta(RecordType::kDelete, 1);
  long_author.author = std::string(65, 'a');
  EXPECT_FALSE(DecodeRecord(EncodeRecord(long_author)).ok());
  // A record type from the future decodes as such.
  auto future = DecodeRecord("\x63whatever");
  ASSERT_TRUE(future.ok());
  EXPECT_FALSE(IsKnownRecordType(future->type));
}

TEST(Meta, LastWriterWinsInAnyOrder) {
  // Each node's records in log order; interleavings of the two logs must agree.
  std::vector<std::pair<std::string, LogRecord>> a = {
      {"a", Meta(RecordType::kCreate, 10, "first")},
      {"a", Meta(RecordType::kTitle, 30, "by a")},
      {"a", Meta(RecordType::kDelete, 40)},
  };
  std::vector<std::pair<std::string, LogRecord>> b = {
      {"b", Meta(RecordType::kTitle, 30, "by b")},  // same ms: "b" > "a" wins
      {"b", Meta(RecordType::kRestore, 35)},
      {"b", Meta(RecordType::kTitle, 20, "old")},
  };
  std::optional<NoteMeta> first;
  // Every merge of the two sequences (3+3 choose 3 = 20).
  for (int mask = 0; mask < 64; ++mask) {
    if (__builtin_popcount(static_cast<unsigned>(mask)) != 3) continue;
    NoteMeta m;
    size_t i = 0, j = 0;
    for (int k = 0; k < 6; ++k) {
      const auto& [node, rec] = (mask >> k) & 1 ? b[j++] : a[i++];
      ApplyToMeta(m, rec, node);
    }
    EXPECT_TRUE(m.created);
    EXPECT_EQ(m.created_ms, 10);
    EXPECT_EQ(m.title, "by b");
    EXPECT_TRUE(m.deleted);  // delete at 40 beats restore at 35
    EXPECT_EQ(m.deleted_at.at_ms, 40);
    EXPECT_EQ(m.updated_at.at_ms, 40);
    if (!first) first = m;
    EXPECT_EQ(m.updated_by, first->updated_by);
  }
  // One node deleting and restoring in the same millisecond: log order.
  NoteMeta m;
  ApplyToMeta(m, Meta(RecordType::kDelete, 5), "a");
  ApplyToMeta(m, Meta(RecordType::kRestore, 5), "a");
  EXPECT_FALSE(m.deleted);
}

TEST(Snapshot, RoundTripAndDamage) {
  NoteMeta meta;
  ApplyToMeta(meta, Meta(RecordType::kCreate, 10, "T"), "a");
  ApplyToMeta(meta, Meta(RecordType::kDelete, 20), "b");
  std::vector<Revision> revs = {{11, "ann", "a", 3, "tok1"}, {12, "bob", "b", 7, "tok2"}};
  std::vector<std::pair<std::string, uint64_t>> covered = {{"a", 120}, {"b", 77}};
  std::string doc = "HNS\x01 pretend doc";
  std::string snap = EncodeSnapshot(covered, meta, revs, doc);
  auto d = DecodeSnapshot(snap);
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_EQ(d->covered, covered);
  EXPECT_EQ(d->doc, doc);
  EXPECT_EQ(d->meta.title, "T");
  EXPECT_TRUE(d->meta.deleted);
  EXPECT_EQ(d->meta.deleted_at.node, "b");
  EXPECT_EQ(d->meta.created_ms, 10);
  ASSERT_EQ(d->revisions.size(), 2u);
  EXPECT_EQ(d->revisions[1].author, "bob");
  EXPECT_EQ(d->revisions[1].version, "tok2");

  for (size_t cut = 0; cut < snap.size(); ++cut) {
    EXPECT_FALSE(DecodeSnapshot(std::string_view(snap).substr(0, cut)).ok()) << cut;
    std::vector<std::pair<std::string, uint64_t>> c;
    ParseStatus ps = DecodeSnapshotCoverage(std::string_view(snap).substr(0, cut), &c);
    if (ps == ParseStatus::kOk) {
      EXPECT_EQ(c, covered);
    } else {
      EXPECT_EQ(ps, ParseStatus::kIncomplete) << cut;
    }
  }
  for (size_t i = 0; i < snap.size(); ++i) {
    std::string bad = snap;
    bad[i] ^= 0x10;
    EXPECT_FALSE(DecodeSnapshot(bad).ok()) << i;
  }
}

TEST(Fuzz, RandomBytesNeverCrash) {
  std::mt19937_64 rng(7);
  Built b = BuildLog();
  for (int round = 0; round < 20000; ++round) {
    std::string in;
    if (round % 2) {
      in.resize(rng() % 200);
      for (char& c : in) c = static_cast<char>(rng());
    } else {
      // Mutations of a valid log reach deeper.
      in = b.bytes;
      for (int k = 0, n = 1 + static_cast<int>(rng() % 4); k < n; ++k) {
        in[rng() % in.size()] = static_cast<char>(rng());
      }
      in.resize(rng() % (in.size() + 1));
    }
    std::string node;
    size_t header = 0;
    if (ParseLogHeader(in, &node, &header) == ParseStatus::kOk) {
      ASSERT_LE(header, in.size());
      LogScan s = ScanLogRecords(std::string_view(in).substr(header), kMax);
      ASSERT_LE(s.end, in.size() - header);
      for (auto p : s.records) (void)DecodeRecord(p);
    }
    (void)ScanLogRecords(in, kMax);
    (void)DecodeRecord(in);
    (void)DecodeSnapshot(in);
    std::vector<std::pair<std::string, uint64_t>> c;
    (void)DecodeSnapshotCoverage(in, &c);
  }
}

}  // namespace
}  // namespace hub::notes
