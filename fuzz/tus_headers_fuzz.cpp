// Fuzzes the tus header parsers with arbitrary bytes; decoded values must
// re-encode consistently.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "upload/tus_headers.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  (void)hub::upload::ParseMetadata(in);
  (void)hub::upload::ParseChecksum(in);
  (void)hub::upload::ParseUint(in, "Upload-Offset");
  if (auto d = hub::upload::Base64Decode(in)) {
    if (hub::upload::Base64Encode(*d) != in) __builtin_trap();
  }
  return 0;
}
