// Fuzzes the streaming multipart/form-data parser: the first byte picks how
// the input is split into pieces, so that delimiters split across pieces are
// exercised; the parser must never crash and never emit more data than fed.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "http/multipart.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  size_t step = (data[0] % 64) + 1;
  std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  hub::http::MultipartParser parser("XyZ");
  size_t emitted = 0;
  hub::http::MultipartCallbacks cb;
  cb.on_part_begin = [](const hub::http::FormPart&) { return hub::Ok(); };
  cb.on_data = [&](std::span<const char> d) {
    emitted += d.size();
    return hub::Ok();
  };
  cb.on_part_end = [] { return hub::Ok(); };
  for (size_t i = 0; i < in.size(); i += step) {
    if (!parser.Feed(in.substr(i, step), cb).ok()) break;
  }
  (void)parser.Finish();
  if (emitted > in.size()) __builtin_trap();
  (void)hub::http::MultipartParser::BoundaryFrom(in);
  return 0;
}
