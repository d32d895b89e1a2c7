#pragma once
// Sans-IO decoder of the chunked transfer coding (RFC 9112 §7.1), used by the
// server's Exchange::ReadSome and by fuzz/http_head_fuzz.cpp.
//
//   chunk      = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//   last-chunk = 1*"0" [ chunk-ext ] CRLF, then trailer fields, then CRLF
//
// Limits: chunk-size at most 16 hex digits; a size line (with extensions) at
// most kMaxLineBytes; all trailer lines together at most kMaxTrailerBytes.
// Extensions and trailers are skipped. Bare LF is an error.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace hub::http::detail {

class ChunkedDecoder {
 public:
  static constexpr size_t kMaxLineBytes = 4096;
  static constexpr size_t kMaxTrailerBytes = 16 * 1024;

  struct Step {
    size_t consumed = 0;  // bytes of `in` used
    size_t produced = 0;  // body bytes written to `out`
  };

  // Decodes as much of `in` as possible into `out`. Stops when `in` is used
  // up, `out` is full, the body is complete (bytes after it belong to the
  // next request and are not consumed) or the input is malformed.
  Step Decode(std::string_view in, std::span<char> out);

  bool done() const { return state_ == State::kDone; }
  bool failed() const { return state_ == State::kError; }
  // Chunk data still expected before the next CRLF; > 0 only while inside
  // chunk data. The caller may read that many bytes straight into its own
  // buffer and report them with ConsumeData (zero-copy for large chunks).
  uint64_t data_remaining() const { return state_ == State::kData ? remaining_ : 0; }
  void ConsumeData(size_t n);

 private:
  enum class State {
    kSize, kSizeWs, kExt, kSizeLf, kData, kDataCr, kDataLf,
    kTrailerStart, kTrailer, kTrailerLf, kEndLf, kDone, kError
  };
  State state_ = State::kSize;
  uint64_t size_ = 0;
  uint64_t remaining_ = 0;
  size_t digits_ = 0;
  size_t line_bytes_ = 0;
  size_t trailer_bytes_ = 0;
};

}  // namespace hub::http::detail
