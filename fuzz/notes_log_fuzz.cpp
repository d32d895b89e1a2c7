// Fuzzes the notepad's storage formats (notes/log.h): a log file (header,
// record framing, checksums), record payloads and snapshots. Whatever is
// accepted must be consistent: records lie inside the input, decoded records
// re-encode to something that decodes the same.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "notes/log.h"

namespace {

using namespace hub::notes;

void CheckRecord(std::string_view payload) {
  auto r = DecodeRecord(payload);
  if (!r.ok() || !IsKnownRecordType(r->type)) return;
  auto again = DecodeRecord(EncodeRecord(*r));
  if (!again.ok() || again->type != r->type || again->at_ms != r->at_ms ||
      again->author != r->author || again->title != r->title || again->version != r->version ||
      again->size != r->size || again->ops != r->ops) {
    __builtin_trap();
  }
  NoteMeta meta;
  ApplyToMeta(meta, *r, "fuzz");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  constexpr uint64_t kMax = 1 << 16;

  std::string node;
  size_t header = 0;
  std::string_view body = in;
  if (ParseLogHeader(in, &node, &header) == ParseStatus::kOk) {
    if (header > in.size() || node.empty()) __builtin_trap();
    body = in.substr(header);
  }
  LogScan scan = ScanLogRecords(body, kMax);
  size_t framed = 0;
  for (std::string_view p : scan.records) {
    if (p.data() < body.data() || p.data() + p.size() > body.data() + body.size()) __builtin_trap();
    if (p.empty() || p.size() > kMax) __builtin_trap();
    framed += kRecordHeaderBytes + p.size();
    CheckRecord(p);
  }
  if (framed != scan.end || scan.end > body.size()) __builtin_trap();
  if ((scan.stop == LogStop::kEnd) != (scan.end == body.size())) __builtin_trap();

  CheckRecord(in);

  std::vector<std::pair<std::string, uint64_t>> covered;
  (void)DecodeSnapshotCoverage(in, &covered);
  if (auto s = DecodeSnapshot(in); s.ok()) {
    std::string again = EncodeSnapshot(s->covered, s->meta, s->revisions, s->doc);
    if (!DecodeSnapshot(again).ok()) __builtin_trap();
  }
  return 0;
}
