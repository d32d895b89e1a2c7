#pragma once
// HTTP/1.1 server: Beast parses request heads, bodies stream through a fixed
// buffer, file bodies go out with sendfile(2). Each connection is a C++20
// coroutine that owns its socket (STYLE.md #4). See src/http/README.md.
//
// Limits and deadlines at every read (STYLE.md #6): header bytes and count
// (431), time to receive a whole request head (slow-loris: 408 + close),
// body read progress timeout, keep-alive idle timeout, connection cap (503).

// First: Boost 1.74's awaitable.hpp uses std::exchange without including
// <utility>, which breaks under clang + libstdc++.
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.h"

namespace hub::http {

namespace asio = boost::asio;

struct ServerOptions {
  std::string bind = "0.0.0.0";         // address to listen on
  uint16_t port = 8501;                  // 0 = pick a free port (tests)
  size_t max_header_bytes = 16 * 1024;   // request line + headers; over -> 431
  size_t max_header_count = 100;         // over -> 431
  std::chrono::milliseconds header_timeout{10'000};  // whole head must arrive in this; -> 408
  std::chrono::milliseconds idle_timeout{60'000};    // keep-alive idle between requests
  std::chrono::milliseconds body_timeout{30'000};    // no body bytes for this long -> abort
  std::chrono::milliseconds write_timeout{60'000};   // no send progress for this long -> abort
  size_t max_connections = 10'000;       // over -> 503 and close
  std::chrono::milliseconds shutdown_grace{10'000};  // Stop() waits this long for in-flight
};

using Headers = std::vector<std::pair<std::string, std::string>>;

// error codes of body reads and sends
enum class errc { body_timeout = 1, body_too_large, connection_closed, bad_body, write_timeout };
const std::error_category& category();
inline std::error_code make_error_code(errc e) { return {static_cast<int>(e), category()}; }

class Request {
 public:
  std::string_view method() const { return method_; }   // "GET", "PATCH", ...
  std::string_view target() const { return target_; }   // raw request-target
  std::string_view path() const { return path_; }       // percent-decoded path, no query
  std::string_view remote_address() const { return remote_; }
  // Case-insensitive header lookup; the first occurrence.
  std::optional<std::string_view> header(std::string_view name) const;
  // All headers, in arrival order, names as sent.
  const Headers& headers() const { return headers_; }
  // Decoded query parameter (first occurrence), e.g. query("limit").
  std::optional<std::string_view> query(std::string_view key) const;
  // Router path parameter, e.g. param("id") for "/api/videos/{id}"; "" if absent.
  std::string_view param(std::string_view name) const;
  // Declared Content-Length, if any (chunked bodies have none).
  std::optional<uint64_t> content_length() const { return content_length_; }
  bool chunked() const { return chunked_; }
  // The route pattern that matched (for metrics), e.g. "/api/videos/{id}".
  std::string_view route() const { return route_; }

  // For the server and tests: builders.
  std::string method_, target_, path_, remote_, route_;
  Headers headers_;
  std::vector<std::pair<std::string, std::string>> query_, params_;
  std::optional<uint64_t> content_length_;
  bool chunked_ = false;
};

struct Response {
  int status = 200;
  Headers headers;      // Content-Length, Date, Server are added by the server
  std::string body;
};

// Reads up to buf.size() bytes of a file at an offset, when no fd exists.
using ReadAt = std::function<Result<size_t>(uint64_t offset, std::span<char> buf)>;

// One piece of a body assembled from memory and a file: `prefix` bytes, then
// `length` bytes of the file from `offset` (the parts of multipart/byteranges).
struct FilePart {
  std::string prefix;
  uint64_t offset = 0;
  uint64_t length = 0;
};

class WebSocket;          // http/websocket.h
struct WebSocketOptions;  // http/websocket.h

// One request and its response on a connection. Valid only during the handler.
class Exchange {
 public:
  virtual ~Exchange() = default;
  virtual const Request& request() const = 0;
  Request& mutable_request() { return const_cast<Request&>(request()); }

  // Reads the next piece of the request body into buf (Content-Length or
  // chunked, decoded). 0 = the body is complete. Sends "100 Continue" first
  // when the client asked for it. Errors: errc::body_timeout,
  // errc::connection_closed, errc::bad_body.
  virtual asio::awaitable<Result<size_t>> ReadSome(std::span<char> buf) = 0;
  // The whole body; errc::body_too_large (without reading further) if the
  // declared or actual length exceeds max_bytes.
  virtual asio::awaitable<Result<std::string>> ReadAll(size_t max_bytes) = 0;
  // Body bytes read so far.
  virtual uint64_t body_bytes_read() const = 0;

  // Sends a complete response (HEAD requests get the head only).
  virtual asio::awaitable<Result<void>> Send(Response response) = 0;
  // Sends `length` bytes of a file starting at `offset` as the body, with
  // sendfile(2) when fd >= 0, else through read_at. `headers` must not hold
  // Content-Length. HEAD: head only.
  virtual asio::awaitable<Result<void>> SendFile(int status, Headers headers, int fd,
                                                 ReadAt read_at, uint64_t offset,
                                                 uint64_t length) = 0;
  // Sends the parts, then `suffix`, as one body with an exact Content-Length
  // (multipart/byteranges). Same rules as SendFile. The server's exchange uses
  // sendfile(2) for the file ranges; this default (for test doubles) reads
  // the ranges into memory and calls Send.
  virtual asio::awaitable<Result<void>> SendFileParts(int status, Headers headers, int fd,
                                                      ReadAt read_at,
                                                      std::span<const FilePart> parts,
                                                      std::string_view suffix);
  // Streaming (server-sent events, long bodies of unknown length): the head
  // with Transfer-Encoding: chunked, then pieces, then End.
  virtual asio::awaitable<Result<void>> BeginStream(int status, Headers headers) = 0;
  virtual asio::awaitable<Result<void>> WriteStream(std::string_view piece) = 0;
  virtual asio::awaitable<Result<void>> EndStream() = 0;
  // WebSocket upgrade (RFC 6455; include http/websocket.h). Checks the
  // handshake (ws::CheckHandshake); on failure answers 400/426/503 JSON itself
  // and returns an error (std::errc::protocol_error). On success sends 101
  // and returns the WebSocket, which owns the connection from then on: the
  // handler loops on Read() and returns when it is done; returning ends the
  // WebSocket (close 1000 if not closed yet, 1011 if the handler threw) and
  // the connection. The default (for test doubles) returns an error.
  virtual asio::awaitable<Result<std::shared_ptr<WebSocket>>> AcceptWebSocket(
      WebSocketOptions options);
  // After the response, close the connection instead of keeping it alive.
  virtual void CloseAfterResponse() = 0;
  // True once the server is shutting down (long streams should end).
  virtual bool stopping() const = 0;
};

using Handler = std::function<asio::awaitable<void>(Exchange&)>;

// Method + path pattern routing. Patterns are literal segments and "{name}"
// segments (one whole segment, any bytes but '/'), and a final "{name...}"
// that takes the rest of the path. First added match wins.
// Unknown path: 404 JSON; known path, other method: 405 with Allow.
// A "{name}" segment must be non-empty; "{name...}" may be empty
// ("/static/" matches "/static/{path...}", "/static" does not). HEAD uses
// the GET route when no HEAD route exists (the server drops the body).
// Immutable once the Server has it; handlers run concurrently on many
// connections' strands and must be thread-safe.
class Router {
 public:
  void Add(std::string_view method, std::string_view pattern, Handler handler);
  // For tests and the server: finds the handler, fills req.params_ and
  // req.route_. Returns nullptr + sets *status (404/405) and *allow.
  const Handler* Match(Request& req, int* status, std::string* allow) const;

 private:
  struct Route {
    std::string method;
    std::vector<std::string> segments;
    Handler handler;
    std::string pattern;
  };
  std::vector<Route> routes_;
};

// Observes every finished request (metrics, access log).
struct RequestRecord {
  std::string_view method, route, path;
  int status = 0;
  uint64_t bytes_in = 0, bytes_out = 0;
  std::chrono::microseconds duration{0};
  // Why the server answered or ended the exchange itself, e.g. "handler threw:
  // <what>", "header_timeout", "write failed: ..."; empty when all went well.
  std::string_view error;
};
// Called on the connections' strands, concurrently: must be thread-safe.
using Observer = std::function<void(const RequestRecord&)>;

// Destroy the Server before its io_context. Start() sets SIGPIPE to
// SIG_IGN unless the process already handles it (sendfile(2) cannot use
// MSG_NOSIGNAL).
class Server {
 public:
  Server(asio::io_context& io, ServerOptions options, Router router, Observer observer = {});
  ~Server();
  // Binds and listens; errors say which address and why (e.g. in use).
  Result<void> Start();
  uint16_t port() const;  // the bound port (useful with port 0)
  size_t connections() const;
  // Stops accepting, lets in-flight requests finish for up to shutdown_grace,
  // then closes every connection. Completes when all are gone.
  asio::awaitable<void> Stop();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// Helpers shared by handlers.
Response JsonError(int status, std::string_view code, std::string_view message);
std::string_view ReasonPhrase(int status);
// Percent-decodes; returns nullopt on malformed escapes or a decoded NUL.
std::optional<std::string> PercentDecode(std::string_view in, bool plus_is_space);

}  // namespace hub::http

template <>
struct std::is_error_code_enum<hub::http::errc> : std::true_type {};
