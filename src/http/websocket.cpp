// The sans-IO half of WebSocket support: handshake checks, the accept key,
// frame encoding and the incremental frame parser. The I/O half (the
// WebSocket a handler gets) lives in server.cpp, beside the connection it
// takes over.

#include "http/websocket.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cstring>

namespace hub::http::ws {
namespace {

constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
constexpr char kBase64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char Lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [](char x, char y) { return Lower(x) == Lower(y); });
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// True if any header named `name` holds `token` in its comma-separated list.
bool HasToken(const Request& request, std::string_view name, std::string_view token) {
  for (const auto& [k, v] : request.headers()) {
    if (!IEquals(k, name)) continue;
    std::string_view rest = v;
    while (!rest.empty()) {
      size_t comma = rest.find(',');
      if (IEquals(Trim(rest.substr(0, comma)), token)) return true;
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  return false;
}

int Base64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

std::string Base64(const unsigned char* p, size_t n) {
  std::string out;
  out.reserve((n + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8) | p[i + 2];
    out += kBase64[v >> 18];
    out += kBase64[(v >> 12) & 63];
    out += kBase64[(v >> 6) & 63];
    out += kBase64[v & 63];
  }
  if (i + 1 == n) {
    uint32_t v = uint32_t{p[i]} << 16;
    out += kBase64[v >> 18];
    out += kBase64[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == n) {
    uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8);
    out += kBase64[v >> 18];
    out += kBase64[(v >> 12) & 63];
    out += kBase64[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

bool IsControl(Opcode op) { return (static_cast<uint8_t>(op) & 0x8) != 0; }

bool ValidCloseCode(uint16_t code) {
  // 1004-1006 and 1015 are reserved (never on the wire); 1012-1014 are
  // registered with IANA since RFC 6455; 3000-4999 belong to libraries and
  // applications.
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

}  // namespace

std::string AcceptKey(std::string_view sec_websocket_key) {
  std::string input;
  input.reserve(sec_websocket_key.size() + kGuid.size());
  input += sec_websocket_key;
  input += kGuid;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(input.data(), input.size(), digest, &length, EVP_sha1(), nullptr) != 1) {
    return {};  // OpenSSL without SHA-1: the handshake then fails on the client
  }
  return Base64(digest, length);
}

bool IsValidKey(std::string_view key) {
  key = Trim(key);
  // 16 bytes = 5 groups of 3 + 1: 22 significant characters, then "==".
  if (key.size() != 24 || key[22] != '=' || key[23] != '=') return false;
  for (size_t i = 0; i < 22; ++i) {
    if (Base64Value(key[i]) < 0) return false;
  }
  return (Base64Value(key[21]) & 0xF) == 0;  // canonical: the unused bits are zero
}

std::optional<HandshakeError> CheckHandshake(const Request& request, unsigned http_version) {
  auto refuse = [](int status, std::string_view code, std::string message) {
    return HandshakeError{status, code, std::move(message)};
  };
  if (request.method() != "GET") {
    return refuse(400, "bad_websocket_handshake",
                  "A WebSocket handshake is a GET request; connect with a WebSocket client.");
  }
  if (http_version < 11) {
    return refuse(400, "bad_websocket_handshake",
                  "A WebSocket handshake needs HTTP/1.1; connect with a WebSocket client.");
  }
  if (!HasToken(request, "upgrade", "websocket")) {
    return refuse(
        400, "bad_websocket_handshake",
        "This URL speaks WebSocket only: send 'Upgrade: websocket' (use a WebSocket client).");
  }
  if (!HasToken(request, "connection", "upgrade")) {
    return refuse(400, "bad_websocket_handshake",
                  "A WebSocket handshake needs 'Connection: Upgrade'; check proxies on the way.");
  }
  auto version = request.header("sec-websocket-version");
  if (!version || Trim(*version) != "13") {
    return refuse(426, "unsupported_websocket_version",
                  "Only WebSocket version 13 (RFC 6455) is supported; send "
                  "'Sec-WebSocket-Version: 13'.");
  }
  auto key = request.header("sec-websocket-key");
  if (!key || !IsValidKey(*key)) {
    return refuse(400, "bad_websocket_handshake",
                  "Sec-WebSocket-Key must be the base64 of 16 random bytes.");
  }
  if (request.chunked() || request.content_length().value_or(0) > 0) {
    return refuse(400, "bad_websocket_handshake", "A WebSocket handshake has no request body.");
  }
  return std::nullopt;
}

std::string_view SelectProtocol(const Request& request, std::string_view wanted) {
  if (wanted.empty()) return {};
  return HasToken(request, "sec-websocket-protocol", wanted) ? wanted : std::string_view{};
}

size_t EncodeHeader(Opcode op, uint64_t payload_size, bool fin, bool masked, uint32_t mask_key,
                    char* out) {
  out[0] = static_cast<char>((fin ? 0x80 : 0) | static_cast<uint8_t>(op));
  const unsigned char mask_bit = masked ? 0x80 : 0;
  size_t n = 2;
  if (payload_size < 126) {
    out[1] = static_cast<char>(mask_bit | payload_size);
  } else if (payload_size <= 0xFFFF) {
    out[1] = static_cast<char>(mask_bit | 126);
    out[2] = static_cast<char>(payload_size >> 8);
    out[3] = static_cast<char>(payload_size);
    n = 4;
  } else {
    out[1] = static_cast<char>(mask_bit | 127);
    for (int i = 0; i < 8; ++i) out[2 + i] = static_cast<char>(payload_size >> (56 - 8 * i));
    n = 10;
  }
  if (masked) {
    for (int i = 0; i < 4; ++i) out[n + i] = static_cast<char>(mask_key >> (24 - 8 * i));
    n += 4;
  }
  return n;
}

std::string EncodeFrame(Opcode op, std::string_view payload, bool fin) {
  char header[14];
  size_t n = EncodeHeader(op, payload.size(), fin, false, 0, header);
  std::string out;
  out.reserve(n + payload.size());
  out.append(header, n);
  out.append(payload);
  return out;
}

std::string EncodeClose(uint16_t code, std::string_view reason) {
  if (code == 0 || code == kCloseNoStatus) return EncodeFrame(Opcode::close, {});
  if (reason.size() > 123) {
    size_t cut = 123;
    while (cut > 0 && (static_cast<unsigned char>(reason[cut]) & 0xC0) == 0x80) --cut;
    reason = reason.substr(0, cut);
  }
  std::string payload;
  payload.reserve(2 + reason.size());
  payload += static_cast<char>(code >> 8);
  payload += static_cast<char>(code & 0xFF);
  payload += reason;
  return EncodeFrame(Opcode::close, payload);
}

std::string EncodeClientFrame(Opcode op, std::string_view payload, uint32_t mask_key, bool fin) {
  char header[14];
  size_t n = EncodeHeader(op, payload.size(), fin, true, mask_key, header);
  std::string out;
  out.reserve(n + payload.size());
  out.append(header, n);
  for (size_t i = 0; i < payload.size(); ++i) {
    out += static_cast<char>(payload[i] ^ static_cast<char>(mask_key >> (24 - 8 * (i & 3))));
  }
  return out;
}

// ---------------------------------------------------------------------------
// UTF-8 (Unicode table 3-7, well-formed byte sequences).

bool Utf8Validator::Feed(std::string_view bytes) {
  if (failed_) return false;
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const auto* end = p + bytes.size();
  while (p < end) {
    if (need_ == 0) {
      // ASCII runs, 8 bytes at a time.
      while (end - p >= 8) {
        uint64_t word;
        std::memcpy(&word, p, 8);
        if (word & 0x8080808080808080ull) break;
        p += 8;
      }
      if (p == end) break;
      unsigned char c = *p++;
      if (c < 0x80) continue;
      lo_ = 0x80;
      hi_ = 0xBF;
      if (c >= 0xC2 && c <= 0xDF) {
        need_ = 1;
      } else if (c == 0xE0) {
        need_ = 2;
        lo_ = 0xA0;  // no overlong 3-byte forms
      } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
        need_ = 2;
      } else if (c == 0xED) {
        need_ = 2;
        hi_ = 0x9F;  // no surrogates
      } else if (c == 0xF0) {
        need_ = 3;
        lo_ = 0x90;  // no overlong 4-byte forms
      } else if (c >= 0xF1 && c <= 0xF3) {
        need_ = 3;
      } else if (c == 0xF4) {
        need_ = 3;
        hi_ = 0x8F;  // nothing above U+10FFFF
      } else {
        failed_ = true;
        return false;
      }
    } else {
      unsigned char c = *p++;
      if (c < lo_ || c > hi_) {
        failed_ = true;
        return false;
      }
      lo_ = 0x80;
      hi_ = 0xBF;
      --need_;
    }
  }
  return true;
}

bool IsValidUtf8(std::string_view bytes) {
  Utf8Validator v;
  return v.Feed(bytes) && v.complete();
}

// ---------------------------------------------------------------------------
// Parser.

Parser::Parser(size_t max_message_bytes, FramesFrom from)
    : max_message_bytes_(max_message_bytes), expect_masked_(from == FramesFrom::kClient) {}

Event Parser::Fail(uint16_t code, std::string error) {
  state_ = State::kFailed;
  error_.kind = Event::Kind::kError;
  error_.code = code;
  error_.error = std::move(error);
  message_ = std::string();
  control_.clear();
  return error_;
}

std::optional<Event> Parser::StartFrame() {
  const unsigned char b0 = header_[0], b1 = header_[1];
  uint64_t length = b1 & 0x7F;
  size_t at = 2;
  if (length == 126) {
    length = (uint64_t{header_[2]} << 8) | header_[3];
    at = 4;
    if (length < 126) return Fail(kCloseProtocolError, "frame length not minimally encoded");
  } else if (length == 127) {
    length = 0;
    for (int i = 0; i < 8; ++i) length = (length << 8) | header_[2 + i];
    at = 10;
    if (length >> 63) return Fail(kCloseProtocolError, "frame length has its top bit set");
    if (length <= 0xFFFF) return Fail(kCloseProtocolError, "frame length not minimally encoded");
  }
  fin_ = (b0 & 0x80) != 0;
  opcode_ = static_cast<Opcode>(b0 & 0x0F);
  masked_ = (b1 & 0x80) != 0;
  if (masked_) std::memcpy(mask_, header_ + at, 4);
  mask_phase_ = 0;
  remaining_ = length;
  if (IsControl(opcode_)) {
    control_.clear();
  } else {
    // Refused from the header: a peer cannot make us buffer an oversized message.
    if (length > max_message_bytes_ - message_.size()) {
      return Fail(kCloseTooBig,
                  "message larger than " + std::to_string(max_message_bytes_) + " bytes");
    }
    if (opcode_ != Opcode::continuation) {
      in_message_ = true;
      message_text_ = opcode_ == Opcode::text;
      message_.clear();
      utf8_.Reset();
    }
    message_.reserve(message_.size() + static_cast<size_t>(length));
  }
  state_ = State::kPayload;
  return std::nullopt;
}

std::optional<Event> Parser::FinishFrame() {
  state_ = State::kHeader;
  header_size_ = 0;
  header_need_ = 2;
  Event event;
  switch (opcode_) {
    case Opcode::ping:
      event.kind = Event::Kind::kPing;
      event.data = control_;
      return event;
    case Opcode::pong:
      event.kind = Event::Kind::kPong;
      event.data = control_;
      return event;
    case Opcode::close: {
      event.kind = Event::Kind::kClose;
      if (control_.empty()) {
        event.code = kCloseNoStatus;
        return event;
      }
      if (control_.size() == 1) {
        return Fail(kCloseProtocolError, "close frame with a 1-byte payload");
      }
      event.code = static_cast<uint16_t>((static_cast<unsigned char>(control_[0]) << 8) |
                                         static_cast<unsigned char>(control_[1]));
      if (!ValidCloseCode(event.code)) {
        return Fail(kCloseProtocolError, "invalid close code " + std::to_string(event.code));
      }
      std::string_view reason = std::string_view(control_).substr(2);
      if (!IsValidUtf8(reason)) return Fail(kCloseInvalidData, "close reason is not UTF-8");
      event.data.assign(reason);
      return event;
    }
    default:
      break;
  }
  if (!fin_) return std::nullopt;  // more fragments follow
  in_message_ = false;
  if (message_text_ && !utf8_.complete()) {
    return Fail(kCloseInvalidData, "text message ends inside a UTF-8 sequence");
  }
  event.kind = Event::Kind::kMessage;
  event.text = message_text_;
  event.data = std::move(message_);
  message_ = std::string();
  return event;
}

Event Parser::Parse(std::string_view in, size_t* consumed) {
  size_t pos = 0;
  *consumed = 0;
  if (state_ == State::kFailed) return error_;
  auto done = [&](Event e) {
    *consumed = pos;
    return e;
  };
  for (;;) {
    if (state_ == State::kHeader) {
      if (pos == in.size()) break;
      size_t take = std::min(header_need_ - header_size_, in.size() - pos);
      std::memcpy(header_ + header_size_, in.data() + pos, take);
      header_size_ += take;
      pos += take;
      if (header_size_ < header_need_) break;
      if (header_need_ == 2) {
        // The first two bytes say what the frame is: refuse it before
        // waiting for the rest of its header.
        const unsigned char b0 = header_[0], b1 = header_[1];
        const auto op = static_cast<Opcode>(b0 & 0x0F);
        const unsigned len7 = b1 & 0x7F;
        if (b0 & 0x70) return done(Fail(kCloseProtocolError, "reserved bits set (no extension)"));
        switch (op) {
          case Opcode::continuation:
          case Opcode::text:
          case Opcode::binary:
          case Opcode::close:
          case Opcode::ping:
          case Opcode::pong:
            break;
          default:
            return done(Fail(kCloseProtocolError, "reserved opcode " + std::to_string(b0 & 0x0F)));
        }
        if (((b1 & 0x80) != 0) != expect_masked_) {
          return done(Fail(kCloseProtocolError,
                           expect_masked_ ? "unmasked client frame" : "masked server frame"));
        }
        if (IsControl(op)) {
          if (!(b0 & 0x80)) return done(Fail(kCloseProtocolError, "fragmented control frame"));
          if (len7 > 125) return done(Fail(kCloseProtocolError, "control frame over 125 bytes"));
        } else if (op == Opcode::continuation && !in_message_) {
          return done(Fail(kCloseProtocolError, "continuation frame without a message"));
        } else if (op != Opcode::continuation && in_message_) {
          return done(Fail(kCloseProtocolError, "new data frame inside a fragmented message"));
        }
        header_need_ = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((b1 & 0x80) ? 4 : 0);
        if (header_size_ < header_need_) continue;
      }
      if (auto e = StartFrame()) return done(std::move(*e));
      if (remaining_ == 0) {
        if (auto e = FinishFrame()) return done(std::move(*e));
      }
      continue;
    }
    // State::kPayload
    if (pos == in.size()) break;
    const size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, in.size() - pos));
    std::string& target = IsControl(opcode_) ? control_ : message_;
    const size_t old = target.size();
    target.append(in.data() + pos, take);
    char* p = target.data() + old;
    if (masked_) {
      // XOR 8 bytes at a time with the key rotated to the current phase.
      unsigned char pattern[8];
      for (size_t k = 0; k < 8; ++k) pattern[k] = mask_[(mask_phase_ + k) & 3];
      uint64_t m;
      std::memcpy(&m, pattern, 8);
      size_t i = 0;
      for (; i + 8 <= take; i += 8) {
        uint64_t w;
        std::memcpy(&w, p + i, 8);
        w ^= m;
        std::memcpy(p + i, &w, 8);
      }
      for (; i < take; ++i) p[i] = static_cast<char>(p[i] ^ pattern[i & 7]);
      mask_phase_ = (mask_phase_ + take) & 3;
    }
    pos += take;
    remaining_ -= take;
    if (!IsControl(opcode_) && message_text_ && !utf8_.Feed(std::string_view(p, take))) {
      return done(Fail(kCloseInvalidData, "text message is not UTF-8"));
    }
    if (remaining_ == 0) {
      if (auto e = FinishFrame()) return done(std::move(*e));
    }
  }
  *consumed = pos;
  return Event{};
}

}  // namespace hub::http::ws
