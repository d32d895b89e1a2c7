#include "http/detail/chunked.h"

#include <algorithm>
#include <cassert>
#include <cstring>

namespace hub::http::detail {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

void ChunkedDecoder::ConsumeData(size_t n) {
  assert(state_ == State::kData && n <= remaining_);
  remaining_ -= n;
  if (remaining_ == 0) state_ = State::kDataCr;
}

ChunkedDecoder::Step ChunkedDecoder::Decode(std::string_view in, std::span<char> out) {
  Step step;
  size_t i = 0;
  while (i < in.size()) {
    if (state_ == State::kData) {
      size_t n = static_cast<size_t>(
          std::min<uint64_t>(remaining_, std::min(in.size() - i, out.size() - step.produced)));
      if (n == 0) break;  // out is full
      std::memcpy(out.data() + step.produced, in.data() + i, n);
      step.produced += n;
      i += n;
      ConsumeData(n);
      continue;
    }
    if (state_ == State::kDone || state_ == State::kError) break;
    const char c = in[i++];
    switch (state_) {
      case State::kSize: {
        ++line_bytes_;
        int v = HexValue(c);
        if (v >= 0) {
          if (++digits_ > 16) {
            state_ = State::kError;
          } else {
            size_ = size_ * 16 + static_cast<uint64_t>(v);
          }
        } else if (digits_ == 0) {
          state_ = State::kError;
        } else if (c == ';') {
          state_ = State::kExt;
        } else if (c == ' ' || c == '\t') {
          state_ = State::kSizeWs;
        } else if (c == '\r') {
          state_ = State::kSizeLf;
        } else {
          state_ = State::kError;
        }
        break;
      }
      case State::kSizeWs:
        ++line_bytes_;
        if (c == ';') {
          state_ = State::kExt;
        } else if (c == '\r') {
          state_ = State::kSizeLf;
        } else if (c != ' ' && c != '\t') {
          state_ = State::kError;
        }
        break;
      case State::kExt:
        ++line_bytes_;
        if (c == '\r') {
          state_ = State::kSizeLf;
        } else if (c == '\n' || c == '\0') {
          state_ = State::kError;
        }
        break;
      case State::kSizeLf:
        if (c != '\n') {
          state_ = State::kError;
        } else if (size_ == 0) {
          state_ = State::kTrailerStart;
        } else {
          remaining_ = size_;
          state_ = State::kData;
        }
        break;
      case State::kDataCr:
        state_ = c == '\r' ? State::kDataLf : State::kError;
        break;
      case State::kDataLf:
        if (c == '\n') {
          state_ = State::kSize;
          size_ = 0;
          digits_ = 0;
          line_bytes_ = 0;
        } else {
          state_ = State::kError;
        }
        break;
      case State::kTrailerStart:
        if (c == '\r') {
          state_ = State::kEndLf;
        } else {
          ++trailer_bytes_;
          state_ = c == '\n' || c == '\0' ? State::kError : State::kTrailer;
        }
        break;
      case State::kTrailer:
        ++trailer_bytes_;
        if (c == '\r') {
          state_ = State::kTrailerLf;
        } else if (c == '\n' || c == '\0') {
          state_ = State::kError;
        }
        break;
      case State::kTrailerLf:
        ++trailer_bytes_;
        state_ = c == '\n' ? State::kTrailerStart : State::kError;
        break;
      case State::kEndLf:
        state_ = c == '\n' ? State::kDone : State::kError;
        break;
      case State::kData:
      case State::kDone:
      case State::kError:
        break;
    }
    if (line_bytes_ > kMaxLineBytes || trailer_bytes_ > kMaxTrailerBytes) state_ = State::kError;
  }
  step.consumed = i;
  return step;
}

}  // namespace hub::http::detail
