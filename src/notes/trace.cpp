#include "notes/trace.h"

#include <zlib.h>

#include <nlohmann/json.hpp>

namespace hub::notes {

Result<Trace> LoadTrace(const std::string& path) {
  auto fail = [&](const std::string& what) {
    return MakeError(std::make_error_code(std::errc::invalid_argument), path + ": " + what);
  };
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) return fail("cannot open (is ../shared beside the repository?)");
  std::string raw;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) {
    raw.append(buf, static_cast<size_t>(n));
    if (raw.size() > (256u << 20)) break;
  }
  gzclose(f);
  if (n < 0 || raw.size() > (256u << 20)) return fail("unreadable or too large");
  auto j = nlohmann::json::parse(raw, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return fail("not JSON");
  Trace t;
  t.start_content = j.value("startContent", "");
  t.end_content = j.value("endContent", "");
  for (const auto& txn : j.at("txns")) {
    std::vector<Edit> edits;
    for (const auto& p : txn.at("patches")) {
      edits.push_back(Edit{p.at(0).get<int64_t>(), p.at(1).get<int64_t>(), p.at(2).get<std::string>()});
    }
    t.txns.push_back(std::move(edits));
  }
  return t;
}

}  // namespace hub::notes
