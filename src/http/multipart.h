#pragma once
// A streaming multipart/form-data parser (RFC 7578 / RFC 2046), sans-IO:
// feed it bytes as they arrive, it calls back with parts and their data.
// Memory stays bounded by the largest fed piece plus the delimiter.

#include <functional>
#include <span>
#include <string>
#include <string_view>

#include "core/result.h"

namespace hub::http {

struct FormPart {
  std::string name;          // Content-Disposition name
  std::string filename;      // empty for plain fields
  std::string content_type;  // empty when absent
};

struct MultipartCallbacks {
  std::function<Result<void>(const FormPart&)> on_part_begin;
  std::function<Result<void>(std::span<const char>)> on_data;
  std::function<Result<void>()> on_part_end;
};

class MultipartParser {
 public:
  // boundary: from the Content-Type (see BoundaryFrom).
  explicit MultipartParser(std::string boundary, size_t max_part_header_bytes = 8192,
                           size_t max_parts = 32);
  // Errors (std::errc::invalid_argument) say what is malformed; callback
  // errors are passed through. After an error the parser is unusable.
  Result<void> Feed(std::string_view data, const MultipartCallbacks& cb);
  // Call at the end of the body: an error if the closing delimiter was not seen.
  Result<void> Finish() const;
  bool done() const { return state_ == State::kEpilogue; }

  // The boundary parameter of a multipart/form-data Content-Type, or "".
  static std::string BoundaryFrom(std::string_view content_type);

 private:
  enum class State { kPreamble, kAfterDelimiter, kHeaders, kBody, kEpilogue, kFailed };
  Result<void> ParseHeaders(std::string_view block, FormPart* part) const;

  std::string delimiter_;  // "\r\n--" + boundary
  size_t max_header_bytes_, max_parts_;
  size_t parts_ = 0;
  State state_ = State::kPreamble;
  std::string buf_;
};

}  // namespace hub::http
