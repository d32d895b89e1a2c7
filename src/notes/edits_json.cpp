#include "notes/edits_json.h"

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <system_error>

namespace hub::notes {

Result<std::vector<Edit>> ParseEditsJson(const nlohmann::json& j) {
  auto bad = [](std::string m) { return MakeError(std::make_error_code(std::errc::invalid_argument), std::move(m)); };
  if (!j.is_array()) return bad("`edits` must be an array of [position, delete_count, \"text\"]");
  if (j.size() > kMaxEditsPerRequest) {
    return bad("at most " + std::to_string(kMaxEditsPerRequest) + " edits per request");
  }
  std::vector<Edit> out;
  out.reserve(j.size());
  for (size_t i = 0; i < j.size(); ++i) {
    const nlohmann::json& e = j[i];
    std::string at = "edit " + std::to_string(i) + ": ";
    if (!e.is_array() || e.size() != 3 || !e[2].is_string()) {
      return bad(at + "must be [position, delete_count, \"text\"]");
    }
    if (!e[0].is_number_integer() || !e[1].is_number_integer()) {
      return bad(at + "position and delete_count must be integers");
    }
    if ((e[0].is_number_unsigned() && e[0].get<uint64_t>() > INT64_MAX) ||
        (e[1].is_number_unsigned() && e[1].get<uint64_t>() > INT64_MAX)) {
      return bad(at + "position or delete_count is out of range");
    }
    out.push_back(Edit{e[0].get<int64_t>(), e[1].get<int64_t>(), e[2].get<std::string>()});
  }
  return out;
}

nlohmann::json EditsToJson(const std::vector<Edit>& edits) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& e : edits) a.push_back(nlohmann::json::array({e.position, e.delete_count, e.insert}));
  return a;
}

}  // namespace hub::notes
