#pragma once
// Internal to the catalog: the complete Video as JSON (every field, unlike the
// API's ToJson), used by the local index to store and rebuild items, and the
// text rules shared by the repository and the index.

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "catalog/video.h"

namespace hub::catalog::detail {

// Every field of `v`, losslessly.
nlohmann::json ToStoredJson(const Video& v);
// Inverse of ToStoredJson; nullopt when a field is missing or has a wrong type.
std::optional<Video> FromStoredJson(const nlohmann::json& j);

// Serialises without ever throwing: invalid UTF-8 (impossible for validated
// fields, defensive for the rest) is replaced by U+FFFD.
std::string Dump(const nlohmann::json& j);

// Lower-cases for search: ASCII, Latin-1, Latin Extended-A, Greek and
// Cyrillic capitals; everything else is copied unchanged. Invalid UTF-8 is
// copied byte by byte. Stable: changing it needs an index schema bump.
std::string LowerForSearch(std::string_view s);

}  // namespace hub::catalog::detail
