#pragma once
// Loads an editing trace (../shared/data/editing-traces/*.json.gz, the format
// of Joseph Gentle's editing-traces collection) for tests and benchmarks.
// Not part of hub_notes: it links zlib and nlohmann-json.

#include <string>
#include <vector>

#include "core/result.h"
#include "notes/doc.h"

namespace hub::notes {

struct Trace {
  std::string start_content;
  std::string end_content;
  std::vector<std::vector<Edit>> txns;  // each: patches [position, deleted, inserted]
  size_t edits() const {
    size_t n = 0;
    for (const auto& t : txns) n += t.size();
    return n;
  }
};

// Reads a gzipped JSON trace (at most 256 MiB uncompressed).
Result<Trace> LoadTrace(const std::string& path);

}  // namespace hub::notes
