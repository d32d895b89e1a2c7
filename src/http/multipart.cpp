#include "http/multipart.h"

#include <algorithm>
#include <cctype>
#include <utility>
#include <vector>

namespace hub::http {
namespace {

Error Malformed(std::string what) {
  return MakeError(std::make_error_code(std::errc::invalid_argument),
                   "malformed multipart/form-data body: " + std::move(what));
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Parses `; key=value; key="quoted"` parameters after a media type or
// disposition type. Returns false when malformed.
bool ParseParams(std::string_view s, const std::function<void(std::string_view, std::string)>& emit) {
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == ';')) ++i;
    if (i >= s.size()) break;
    size_t eq = s.find('=', i);
    if (eq == std::string_view::npos) return false;
    std::string key = Lower(Trim(s.substr(i, eq - i)));
    i = eq + 1;
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    std::string value;
    if (i < s.size() && s[i] == '"') {
      ++i;
      bool closed = false;
      while (i < s.size()) {
        char c = s[i++];
        if (c == '\\' && i < s.size()) {
          value.push_back(s[i++]);
        } else if (c == '"') {
          closed = true;
          break;
        } else {
          value.push_back(c);
        }
      }
      if (!closed) return false;
    } else {
      size_t end = s.find(';', i);
      value = std::string(Trim(s.substr(i, end == std::string_view::npos ? s.npos : end - i)));
      i = end == std::string_view::npos ? s.size() : end;
    }
    emit(key, std::move(value));
  }
  return true;
}

}  // namespace

MultipartParser::MultipartParser(std::string boundary, size_t max_part_header_bytes, size_t max_parts)
    : delimiter_("\r\n--" + boundary), max_header_bytes_(max_part_header_bytes), max_parts_(max_parts) {
  // The first delimiter may start the body without a preceding CRLF.
  buf_ = "\r\n";
}

std::string MultipartParser::BoundaryFrom(std::string_view content_type) {
  size_t semi = content_type.find(';');
  if (Lower(Trim(content_type.substr(0, semi))) != "multipart/form-data") return "";
  if (semi == std::string_view::npos) return "";
  std::string boundary;
  bool ok = ParseParams(content_type.substr(semi + 1), [&](std::string_view k, std::string v) {
    if (k == "boundary") boundary = std::move(v);
  });
  // RFC 2046: 1..70 characters.
  if (!ok || boundary.empty() || boundary.size() > 70) return "";
  return boundary;
}

Result<void> MultipartParser::ParseHeaders(std::string_view block, FormPart* part) const {
  bool disposition = false;
  size_t pos = 0;
  while (pos < block.size()) {
    size_t eol = block.find("\r\n", pos);
    std::string_view line = block.substr(pos, eol == std::string_view::npos ? block.npos : eol - pos);
    pos = eol == std::string_view::npos ? block.size() : eol + 2;
    if (line.empty()) continue;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) return Malformed("a part header line has no ':'");
    std::string name = Lower(Trim(line.substr(0, colon)));
    std::string_view value = Trim(line.substr(colon + 1));
    if (name == "content-disposition") {
      size_t semi = value.find(';');
      if (Lower(Trim(value.substr(0, semi))) != "form-data") {
        return Malformed("a part's Content-Disposition is not form-data");
      }
      disposition = true;
      if (semi != std::string_view::npos &&
          !ParseParams(value.substr(semi + 1), [&](std::string_view k, std::string v) {
            if (k == "name") part->name = std::move(v);
            if (k == "filename") part->filename = std::move(v);
          })) {
        return Malformed("a part's Content-Disposition parameters");
      }
    } else if (name == "content-type") {
      part->content_type = std::string(value);
    }
  }
  if (!disposition || part->name.empty()) return Malformed("a part has no Content-Disposition name");
  return Ok();
}

Result<void> MultipartParser::Feed(std::string_view data, const MultipartCallbacks& cb) {
  if (state_ == State::kFailed) return Malformed("parser already failed");
  if (state_ == State::kEpilogue) return Ok();  // epilogue is ignored
  buf_.append(data);
  auto fail = [&](Error e) -> Result<void> {
    state_ = State::kFailed;
    return e;
  };
  for (;;) {
    switch (state_) {
      case State::kPreamble: {
        size_t at = buf_.find(delimiter_);
        if (at == std::string::npos) {
          if (buf_.size() > 64 * 1024) return fail(Malformed("no boundary found"));
          return Ok();
        }
        buf_.erase(0, at + delimiter_.size());
        state_ = State::kAfterDelimiter;
        break;
      }
      case State::kAfterDelimiter: {
        // "--" closes; otherwise optional whitespace then CRLF.
        if (buf_.size() < 2) return Ok();
        if (buf_.compare(0, 2, "--") == 0) {
          state_ = State::kEpilogue;
          buf_.clear();
          return Ok();
        }
        size_t i = 0;
        while (i < buf_.size() && (buf_[i] == ' ' || buf_[i] == '\t')) ++i;
        if (i > 64) return fail(Malformed("junk after a boundary"));
        if (buf_.size() < i + 2) return Ok();
        if (buf_.compare(i, 2, "\r\n") != 0) return fail(Malformed("a boundary is not followed by CRLF"));
        buf_.erase(0, i + 2);
        if (++parts_ > max_parts_) return fail(Malformed("too many parts"));
        state_ = State::kHeaders;
        break;
      }
      case State::kHeaders: {
        size_t end = buf_.compare(0, 2, "\r\n") == 0 ? 0 : buf_.find("\r\n\r\n");
        if (end == std::string::npos) {
          if (buf_.size() > max_header_bytes_) return fail(Malformed("part headers too large"));
          return Ok();
        }
        if (end > max_header_bytes_) return fail(Malformed("part headers too large"));
        FormPart part;
        if (auto r = ParseHeaders(std::string_view(buf_).substr(0, end), &part); !r) return fail(r.error());
        buf_.erase(0, end == 0 ? 2 : end + 4);
        if (cb.on_part_begin) {
          if (auto r = cb.on_part_begin(part); !r) return fail(r.error());
        }
        state_ = State::kBody;
        break;
      }
      case State::kBody: {
        size_t at = buf_.find(delimiter_);
        if (at == std::string::npos) {
          // Keep a tail that could be the start of a split delimiter.
          if (buf_.size() >= delimiter_.size()) {
            size_t emit = buf_.size() - (delimiter_.size() - 1);
            if (cb.on_data) {
              if (auto r = cb.on_data(std::span<const char>(buf_.data(), emit)); !r) return fail(r.error());
            }
            buf_.erase(0, emit);
          }
          return Ok();
        }
        if (at > 0 && cb.on_data) {
          if (auto r = cb.on_data(std::span<const char>(buf_.data(), at)); !r) return fail(r.error());
        }
        buf_.erase(0, at + delimiter_.size());
        if (cb.on_part_end) {
          if (auto r = cb.on_part_end(); !r) return fail(r.error());
        }
        state_ = State::kAfterDelimiter;
        break;
      }
      case State::kEpilogue:
        return Ok();
      case State::kFailed:
        return Malformed("parser already failed");
    }
  }
}

Result<void> MultipartParser::Finish() const {
  if (state_ != State::kEpilogue) return Malformed("the body ended before the closing boundary");
  return Ok();
}

}  // namespace hub::http
