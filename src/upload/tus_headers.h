#pragma once
// Parsers for the tus 1.0.0 request headers. Pure functions over untrusted
// text; fuzzed by fuzz/tus_headers_fuzz.cpp. Every failure says what was wrong.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "core/result.h"

namespace hub::upload {

inline constexpr std::string_view kTusVersion = "1.0.0";
inline constexpr std::string_view kTusExtensions =
    "creation,creation-with-upload,termination,checksum,expiration";
inline constexpr std::string_view kTusChecksumAlgorithms = "sha1,md5,sha256";

// Upload-Offset / Upload-Length: 1..20 ASCII digits, no sign, no overflow.
Result<uint64_t> ParseUint(std::string_view value, std::string_view header_name);

// Upload-Metadata: comma-separated "key[ base64value]" pairs. Keys are
// non-empty, unique, ASCII without spaces or commas; values strict base64
// (padding required when needed). At most 64 pairs, 8 KiB total.
Result<std::map<std::string, std::string>> ParseMetadata(std::string_view value);

enum class ChecksumAlgorithm { kSha1, kMd5, kSha256 };

struct ChecksumSpec {
  ChecksumAlgorithm algorithm;
  std::string digest;  // raw bytes (decoded from base64)
};

// Upload-Checksum: "<algorithm> <base64 digest>". Unknown algorithm ->
// error code unsupported_checksum (HTTP 400); wrong digest length -> 400.
Result<ChecksumSpec> ParseChecksum(std::string_view value);

// Strict base64 (RFC 4648 §4, with padding). nullopt when malformed.
std::optional<std::string> Base64Decode(std::string_view in);
std::string Base64Encode(std::string_view in);

}  // namespace hub::upload
