#include "upload/tus_headers.h"

#include <array>

#include "upload/upload.h"

namespace hub::upload {
namespace {

Error Bad(std::string message) { return MakeError(errc::bad_request, std::move(message)); }

constexpr std::array<int8_t, 256> MakeDecodeTable() {
  std::array<int8_t, 256> t{};
  for (auto& v : t) v = -1;
  const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(alphabet[i])] = static_cast<int8_t>(i);
  return t;
}
constexpr auto kDecode = MakeDecodeTable();

}  // namespace

std::optional<std::string> Base64Decode(std::string_view in) {
  if (in.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(in.size() / 4 * 3);
  for (size_t i = 0; i < in.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int j = 0; j < 4; ++j) {
      char c = in[i + static_cast<size_t>(j)];
      if (c == '=') {
        // Padding only in the last quantum, only in its last two places.
        if (i + 4 != in.size() || j < 2) return std::nullopt;
        v[j] = 0;
        ++pad;
      } else {
        if (pad > 0) return std::nullopt;
        v[j] = kDecode[static_cast<unsigned char>(c)];
        if (v[j] < 0) return std::nullopt;
      }
    }
    uint32_t n = (static_cast<uint32_t>(v[0]) << 18) | (static_cast<uint32_t>(v[1]) << 12) |
                 (static_cast<uint32_t>(v[2]) << 6) | static_cast<uint32_t>(v[3]);
    out.push_back(static_cast<char>(n >> 16));
    if (pad < 2) out.push_back(static_cast<char>((n >> 8) & 0xff));
    if (pad < 1) out.push_back(static_cast<char>(n & 0xff));
    // Canonical: the bits dropped by padding must be zero.
    if ((pad == 1 && (v[2] & 0x3)) || (pad == 2 && (v[1] & 0xf))) return std::nullopt;
  }
  return out;
}

std::string Base64Encode(std::string_view in) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    uint32_t n = (static_cast<unsigned char>(in[i]) << 16) |
                 (static_cast<unsigned char>(in[i + 1]) << 8) | static_cast<unsigned char>(in[i + 2]);
    out.push_back(kAlphabet[n >> 18]);
    out.push_back(kAlphabet[(n >> 12) & 63]);
    out.push_back(kAlphabet[(n >> 6) & 63]);
    out.push_back(kAlphabet[n & 63]);
  }
  if (i < in.size()) {
    uint32_t n = static_cast<unsigned char>(in[i]) << 16;
    if (i + 1 < in.size()) n |= static_cast<unsigned char>(in[i + 1]) << 8;
    out.push_back(kAlphabet[n >> 18]);
    out.push_back(kAlphabet[(n >> 12) & 63]);
    out.push_back(i + 1 < in.size() ? kAlphabet[(n >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

Result<uint64_t> ParseUint(std::string_view value, std::string_view header_name) {
  if (value.empty() || value.size() > 20) {
    return Bad(std::string(header_name) + " must be a non-negative integer");
  }
  uint64_t n = 0;
  for (char c : value) {
    if (c < '0' || c > '9') return Bad(std::string(header_name) + " must be a non-negative integer");
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (n > (UINT64_MAX - d) / 10) return Bad(std::string(header_name) + " is too large");
    n = n * 10 + d;
  }
  return n;
}

Result<std::map<std::string, std::string>> ParseMetadata(std::string_view value) {
  std::map<std::string, std::string> out;
  if (value.size() > 8192) return Bad("Upload-Metadata is longer than 8 KiB");
  if (value.empty()) return out;
  size_t pos = 0;
  while (pos <= value.size()) {
    size_t comma = value.find(',', pos);
    std::string_view pair = value.substr(pos, comma == std::string_view::npos ? std::string_view::npos
                                                                               : comma - pos);
    // Optional whitespace around pairs.
    while (!pair.empty() && (pair.front() == ' ' || pair.front() == '\t')) pair.remove_prefix(1);
    while (!pair.empty() && (pair.back() == ' ' || pair.back() == '\t')) pair.remove_suffix(1);
    if (pair.empty()) return Bad("Upload-Metadata has an empty pair");
    size_t space = pair.find(' ');
    std::string_view key = pair.substr(0, space);
    std::string_view encoded = space == std::string_view::npos ? std::string_view{} : pair.substr(space + 1);
    if (key.empty()) return Bad("Upload-Metadata has an empty key");
    for (char c : key) {
      if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
        return Bad("Upload-Metadata key '" + std::string(key) + "' must be printable ASCII");
      }
    }
    if (encoded.find(' ') != std::string_view::npos) {
      return Bad("Upload-Metadata value of '" + std::string(key) + "' must be one base64 word");
    }
    auto decoded = Base64Decode(encoded);
    if (!decoded) return Bad("Upload-Metadata value of '" + std::string(key) + "' is not valid base64");
    if (!out.emplace(std::string(key), std::move(*decoded)).second) {
      return Bad("Upload-Metadata key '" + std::string(key) + "' appears twice");
    }
    if (out.size() > 64) return Bad("Upload-Metadata has more than 64 pairs");
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  return out;
}

Result<ChecksumSpec> ParseChecksum(std::string_view value) {
  size_t space = value.find(' ');
  if (space == std::string_view::npos) {
    return Bad("Upload-Checksum must be '<algorithm> <base64 digest>'");
  }
  std::string_view name = value.substr(0, space);
  std::string_view encoded = value.substr(space + 1);
  ChecksumSpec spec{};
  size_t want = 0;
  if (name == "sha1") {
    spec.algorithm = ChecksumAlgorithm::kSha1;
    want = 20;
  } else if (name == "md5") {
    spec.algorithm = ChecksumAlgorithm::kMd5;
    want = 16;
  } else if (name == "sha256") {
    spec.algorithm = ChecksumAlgorithm::kSha256;
    want = 32;
  } else {
    return MakeError(errc::unsupported_checksum,
                     "Upload-Checksum algorithm '" + std::string(name.substr(0, 32)) +
                         "' is not supported; use one of " + std::string(kTusChecksumAlgorithms));
  }
  auto digest = Base64Decode(encoded);
  if (!digest || digest->size() != want) {
    return Bad("Upload-Checksum digest is not a base64 " + std::string(name) + " digest");
  }
  spec.digest = std::move(*digest);
  return spec;
}

}  // namespace hub::upload
