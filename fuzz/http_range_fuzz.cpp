// Fuzzes the header grammars of file responses: ParseRange (with its
// invariants: sorted, coalesced, inside the file, at most max_ranges), the
// entity-tag list and If-Range comparisons, PercentDecode and ContentTypeFor.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "http/detail/conditional.h"
#include "http/file_response.h"
#include "http/server.h"

namespace {
void Check(bool ok) {
  if (!ok) __builtin_trap();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 9) return 0;
  uint64_t file_size;
  std::memcpy(&file_size, data, 8);
  const uint8_t knobs = data[8];
  // Mostly small files, so that ranges are often satisfiable.
  if (knobs & 1) file_size %= 1000;
  const size_t max_ranges = (knobs >> 1) & 31;
  std::string_view value(reinterpret_cast<const char*>(data) + 9, size - 9);

  hub::http::RangeSpec spec = hub::http::ParseRange(value, file_size, max_ranges);
  if (spec.kind == hub::http::RangeSpec::kRanges) {
    Check(!spec.ranges.empty() && spec.ranges.size() <= max_ranges);
    for (size_t i = 0; i < spec.ranges.size(); ++i) {
      const auto& r = spec.ranges[i];
      Check(r.first <= r.last && r.last < file_size);
      // Sorted, and neither overlapping nor adjacent (those are merged).
      if (i > 0) Check(spec.ranges[i - 1].last + 1 < r.first);
    }
  } else {
    Check(spec.ranges.empty());
    if (spec.kind == hub::http::RangeSpec::kUnsatisfiable) Check(max_ranges > 0);
  }
  if (file_size == 0) Check(spec.kind != hub::http::RangeSpec::kRanges);

  const std::string_view etag = "\"5f-17a\"";
  bool strong = hub::http::detail::EtagListMatches(value, etag, true);
  bool weak = hub::http::detail::EtagListMatches(value, etag, false);
  Check(!strong || weak);  // a strong match is also a weak one
  (void)hub::http::detail::IfRangeMatches(value, etag, static_cast<int64_t>(file_size >> 1));

  for (bool plus : {false, true}) {
    auto decoded = hub::http::PercentDecode(value, plus);
    if (decoded) {
      Check(decoded->size() <= value.size());
      Check(decoded->find('\0') == std::string::npos);
    }
  }
  (void)hub::http::ContentTypeFor(value);
  return 0;
}
