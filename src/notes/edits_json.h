#pragma once
// The JSON form of edits used by the HTTP API and the WebSocket
// (docs/notes-api.md): [[position, delete_count, "inserted text"], ...].
// Shape only: positions, counts and UTF-8 are checked by Doc::Apply.

#include <nlohmann/json_fwd.hpp>
#include <vector>

#include "core/result.h"
#include "notes/doc.h"

namespace hub::notes {

inline constexpr size_t kMaxEditsPerRequest = 100'000;

// std::errc::invalid_argument with a sentence naming the edit when the shape
// is wrong: not an array, an entry not [integer, integer, string], an
// integer out of int64 range, more than kMaxEditsPerRequest entries.
Result<std::vector<Edit>> ParseEditsJson(const nlohmann::json& j);
nlohmann::json EditsToJson(const std::vector<Edit>& edits);

}  // namespace hub::notes
