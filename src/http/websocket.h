#pragma once
// WebSocket (RFC 6455) for the http server: a sans-IO codec (`ws::`) and the
// server-side `WebSocket` a handler gets from Exchange::AcceptWebSocket.
// No extensions (permessage-deflate is refused by not answering it).
// See src/http/README.md, "WebSocket".

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "http/server.h"

namespace hub::http::ws {

enum class Opcode : uint8_t {
  continuation = 0,
  text = 1,
  binary = 2,
  close = 8,
  ping = 9,
  pong = 10
};

// Close codes (RFC 6455 §7.4.1) the server sends or reports.
inline constexpr uint16_t kCloseNormal = 1000;
inline constexpr uint16_t kCloseGoingAway = 1001;  // server stopping, idle peer
inline constexpr uint16_t kCloseProtocolError = 1002;
inline constexpr uint16_t kCloseNoStatus = 1005;     // a close frame without a code (never sent)
inline constexpr uint16_t kCloseAbnormal = 1006;     // the connection ended without a close frame
inline constexpr uint16_t kCloseInvalidData = 1007;  // text that is not UTF-8
inline constexpr uint16_t kClosePolicy = 1008;       // e.g. a consumer too slow
inline constexpr uint16_t kCloseTooBig = 1009;
inline constexpr uint16_t kCloseInternalError = 1011;  // the handler threw

// base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")), the
// Sec-WebSocket-Accept answering a Sec-WebSocket-Key.
std::string AcceptKey(std::string_view sec_websocket_key);
// True if `key` (surrounding blanks ignored) is the base64 of 16 bytes.
bool IsValidKey(std::string_view key);

// Why an upgrade request is refused: answer JsonError(status, code, message)
// (426 also carries "Sec-WebSocket-Version: 13").
struct HandshakeError {
  int status = 400;
  std::string_view code;  // static string
  std::string message;
};
// Checks an opening handshake (RFC 6455 §4.2.1): GET, HTTP/1.1 or later, a
// Connection header with the "upgrade" token, Upgrade with "websocket",
// Sec-WebSocket-Version 13 (else 426), a valid Sec-WebSocket-Key, no body.
// `http_version` is 10 or 11.
std::optional<HandshakeError> CheckHandshake(const Request& request, unsigned http_version);
// `wanted` if the client's Sec-WebSocket-Protocol list offers it, else "".
std::string_view SelectProtocol(const Request& request, std::string_view wanted);

// Writes the header of a frame with `payload_size` bytes to out[0..14) and
// returns its length (2 to 14). mask_key is written only when `masked`.
size_t EncodeHeader(Opcode op, uint64_t payload_size, bool fin, bool masked, uint32_t mask_key,
                    char* out);
// One server frame (never masked), payloads of any size (7/16/64-bit lengths).
std::string EncodeFrame(Opcode op, std::string_view payload, bool fin = true);
// A close frame: the code and the reason cut to 123 bytes (at a UTF-8
// boundary). Code 0 or 1005 gives an empty payload (1005 must not be sent).
std::string EncodeClose(uint16_t code, std::string_view reason);
// A client frame, masked with mask_key (its bytes on the wire big-endian),
// as RFC 6455 requires of clients: for tests and benchmarks.
std::string EncodeClientFrame(Opcode op, std::string_view payload, uint32_t mask_key,
                              bool fin = true);

// Incremental UTF-8 validation (RFC 3629: no overlongs, surrogates or code
// points above U+10FFFF); input may be split anywhere, even inside a code point.
class Utf8Validator {
 public:
  // False as soon as the bytes so far cannot begin valid UTF-8 (then stays false).
  bool Feed(std::string_view bytes);
  // True when no code point is left unfinished.
  bool complete() const { return need_ == 0 && !failed_; }
  void Reset() { *this = Utf8Validator(); }

 private:
  uint8_t need_ = 0, lo_ = 0x80, hi_ = 0xBF;
  bool failed_ = false;
};
bool IsValidUtf8(std::string_view bytes);

// What Parser::Parse found.
struct Event {
  enum class Kind : uint8_t {
    kNeedMore,  // every byte was consumed; no event completed
    kMessage,   // a whole data message (reassembled from its fragments)
    kPing,
    kPong,
    kClose,  // a valid close frame
    kError,  // the stream is invalid: close with `code`; the parser stays failed
  };
  Kind kind = Kind::kNeedMore;
  bool text = false;  // kMessage: a text message (else binary)
  // kClose: the peer's code (1005 when the frame had none); kError: the code
  // to close with (1002 protocol, 1007 bad UTF-8, 1009 too big).
  uint16_t code = 0;
  std::string data;   // kMessage: the payload; kPing/kPong: the payload; kClose: the reason
  std::string error;  // kError: what was wrong, in words
};

// Which side's frames a Parser reads: the server reads masked client frames;
// a client (tests, benchmarks) reads unmasked server frames.
enum class FramesFrom : uint8_t { kClient, kServer };

// Incremental frame parser: feed bytes as they arrive, get whole messages,
// control frames, or an error carrying the close code to send. Sans-IO.
// Memory: the message being reassembled, at most max_message_bytes (refused
// from the frame header, before any payload is buffered), plus 125 bytes.
// Errors (1002): a frame masked the wrong way for its side, reserved bits,
// reserved opcodes, a control frame fragmented or over 125 bytes, a
// continuation without a message, a data frame inside a fragmented message,
// a non-minimal or 64-bit-overflowing length, a bad close payload (1 byte,
// invalid code). 1007: a text message or close reason that is not UTF-8
// (checked as bytes arrive, across fragments). 1009: a message over
// max_message_bytes.
class Parser {
 public:
  explicit Parser(size_t max_message_bytes, FramesFrom from = FramesFrom::kClient);

  // Consumes bytes of `in` up to the end of the first event it completes and
  // returns it, with *consumed = the bytes used; kNeedMore when all of `in`
  // was used without completing one. After kError every call returns that
  // error again and consumes nothing.
  Event Parse(std::string_view in, size_t* consumed);

  bool failed() const { return state_ == State::kFailed; }
  // Payload bytes held for the message being reassembled.
  size_t buffered() const { return message_.size(); }

 private:
  enum class State : uint8_t { kHeader, kPayload, kFailed };
  Event Fail(uint16_t code, std::string error);
  // A whole header is in header_; checks it and sets up the payload.
  std::optional<Event> StartFrame();
  std::optional<Event> FinishFrame();

  const size_t max_message_bytes_;
  const bool expect_masked_;
  State state_ = State::kHeader;
  unsigned char header_[14] = {};
  size_t header_size_ = 0, header_need_ = 2;
  // The current frame.
  Opcode opcode_ = Opcode::continuation;
  bool fin_ = false, masked_ = false;
  unsigned char mask_[4] = {};
  size_t mask_phase_ = 0;
  uint64_t remaining_ = 0;
  // The message being reassembled (data frames) and the control payload.
  bool in_message_ = false, message_text_ = false;
  std::string message_;
  std::string control_;
  Utf8Validator utf8_;
  Event error_;  // kError once failed
};

}  // namespace hub::http::ws

namespace hub::http {

struct WebSocketOptions {
  size_t max_message_bytes = 1 << 20;  // a bigger incoming message -> close 1009
  size_t max_queued_bytes = 8 << 20;   // Post()ed bytes not yet sent; over -> close 1008
  // No frame from the peer for this long during Read() -> the connection is
  // dropped; a ping goes out after half of it, so live peers answer in time.
  std::chrono::milliseconds idle_timeout{60'000};
  // After our close frame went out: how long to wait for the peer's.
  std::chrono::milliseconds close_timeout{5'000};
  std::string protocol;  // Sec-WebSocket-Protocol to answer if the client offered it ("" = none)
};

// A server-side WebSocket that took over a connection after the upgrade.
// Read() belongs to the handler's coroutine (one at a time, until the handler
// returns); Post, Close, close_code and closed are thread-safe. The object may
// outlive the handler (e.g. in a list of subscribers): once the connection has
// ended, Post returns false, Read an error, and the object holds no I/O
// object any more (it may then be dropped anywhere, even after the io_context).
// The handler should loop on Read(): that is how it learns of the client's
// close, of errors and of Server::Stop() (which closes with 1001).
class WebSocket {
 public:
  struct Message {
    bool text = true;
    std::string data;
  };
  virtual ~WebSocket() = default;

  // The next data message. Answers pings with pongs and ignores pongs. On the
  // peer's close frame: answers it and returns errc::connection_closed
  // (close_code() then holds the peer's code). A protocol error sends the
  // close frame with its code and returns errc::bad_body (errc::body_too_large
  // for 1009). No frame for options.idle_timeout: errc::body_timeout and the
  // connection is dropped. After Close(), data messages are dropped until the
  // peer's close arrives (or close_timeout). Once it returned an error, every
  // later call returns it again.
  virtual asio::awaitable<Result<Message>> Read() = 0;
  // Thread-safe, non-blocking: queues a text message (valid UTF-8, not
  // checked) for sending. False once the socket is closing, and when the
  // queue would exceed max_queued_bytes: then the queue is dropped and the
  // socket closed with 1008 "too slow" (a slow consumer never grows memory).
  virtual bool Post(std::string text) = 0;
  // The same for a binary message.
  virtual bool PostBinary(std::string data) = 0;
  // Thread-safe: sends a close frame (after what is queued), then ends the
  // connection once the peer answers (or close_timeout passes). The first
  // close wins; later calls do nothing.
  virtual void Close(uint16_t code, std::string reason) = 0;
  // The first close code sent or received; 1006 if the connection ended
  // without one; 0 while open.
  virtual uint16_t close_code() const = 0;
  // True once closing has begun (Post returns false from then on).
  virtual bool closed() const = 0;
};

}  // namespace hub::http
