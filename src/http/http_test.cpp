#include "http/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <future>
#include <mutex>
#include <thread>

#include "core/clock.h"
#include "http/detail/chunked.h"
#include "http/detail/conditional.h"
#include "http/detail/request_head.h"
#include "http/file_response.h"

namespace hub::http {
namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------
// A raw blocking HTTP/1.1 client: writes bytes, parses responses itself (so
// the server is checked against an independent reading of the protocol).

struct RawResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  std::optional<std::string> header(std::string_view name) const {
    for (const auto& [k, v] : headers) {
      if (k.size() == name.size() &&
          std::equal(k.begin(), k.end(), name.begin(),
                     [](char a, char b) { return std::tolower(a) == std::tolower(b); })) {
        return v;
      }
    }
    return std::nullopt;
  }
};

class Client {
 public:
  explicit Client(uint16_t port, std::chrono::milliseconds read_timeout = 10s) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    SetReadTimeout(read_timeout);
  }
  ~Client() {
    if (fd_ >= 0) ::close(fd_);
  }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool connected() const { return connected_; }
  void SetReadTimeout(std::chrono::milliseconds t) {
    timeval tv{};
    tv.tv_sec = t.count() / 1000;
    tv.tv_usec = (t.count() % 1000) * 1000;
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }

  bool Send(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // Reads one response. head_only: the answer to a HEAD (no body whatever
  // the framing says).
  std::optional<RawResponse> Read(bool head_only = false) {
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return std::nullopt;
    }
    RawResponse r;
    std::string head = buf_.substr(0, end + 2);
    buf_.erase(0, end + 4);
    size_t line_end = head.find("\r\n");
    std::string status_line = head.substr(0, line_end);
    if (status_line.rfind("HTTP/1.1 ", 0) != 0) return std::nullopt;
    r.status = std::atoi(status_line.c_str() + 9);
    size_t pos = line_end + 2;
    while (pos < head.size()) {
      size_t e = head.find("\r\n", pos);
      std::string line = head.substr(pos, e - pos);
      pos = e + 2;
      size_t colon = line.find(':');
      std::string value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      r.headers.emplace_back(line.substr(0, colon), value);
    }
    if (head_only || r.status / 100 == 1 || r.status == 204 || r.status == 304) return r;
    if (r.header("Transfer-Encoding") == "chunked") {
      for (;;) {
        size_t e;
        while ((e = buf_.find("\r\n")) == std::string::npos) {
          if (!Fill()) return std::nullopt;
        }
        size_t size = std::stoul(buf_.substr(0, e), nullptr, 16);
        buf_.erase(0, e + 2);
        while (buf_.size() < size + 2) {
          if (!Fill()) return std::nullopt;
        }
        r.body += buf_.substr(0, size);
        buf_.erase(0, size + 2);
        if (size == 0) return r;
      }
    }
    if (auto cl = r.header("Content-Length")) {
      size_t n = std::stoull(*cl);
      while (buf_.size() < n) {
        if (!Fill(n - buf_.size())) return std::nullopt;
      }
      r.body = buf_.substr(0, n);
      buf_.erase(0, n);
      return r;
    }
    while (Fill()) {
    }
    r.body = std::move(buf_);
    buf_.clear();
    return r;
  }

  // True if the server closes the connection (EOF or reset) with no further
  // bytes within the read timeout.
  bool ClosedWithoutData() {
    char c;
    ssize_t n = ::recv(fd_, &c, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
  }
  // Reads until EOF; false on timeout.
  bool ReadToEof() {
    for (;;) {
      char tmp[65536];
      ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
      if (n == 0) return true;
      if (n < 0) return errno == ECONNRESET;
    }
  }
  // Whatever arrives next (at least one byte unless the connection ends).
  std::string RecvSome() {
    char tmp[4096];
    ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    return n > 0 ? std::string(tmp, static_cast<size_t>(n)) : std::string();
  }

 private:
  bool Fill(size_t hint = 0) {
    size_t want = std::clamp<size_t>(hint, 64 * 1024, 1 << 20);
    size_t old = buf_.size();
    buf_.resize(old + want);
    ssize_t n = ::recv(fd_, buf_.data() + old, want, 0);
    buf_.resize(old + (n > 0 ? static_cast<size_t>(n) : 0));
    return n > 0;
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string buf_;
};

std::string Get(std::string_view path, std::string_view extra = "") {
  return "GET " + std::string(path) + " HTTP/1.1\r\nHost: test\r\n" + std::string(extra) + "\r\n";
}

// ---------------------------------------------------------------------------
// A Server on 127.0.0.1:<ephemeral port>, its io_context run by two threads.

struct Observed {
  std::mutex mu;
  std::vector<std::tuple<std::string, std::string, int, std::string>> records;  // method, route, status, error

  Observer observer() {
    return [this](const RequestRecord& r) {
      std::lock_guard lock(mu);
      records.emplace_back(std::string(r.method), std::string(r.route), r.status,
                           std::string(r.error));
    };
  }
  size_t size() {
    std::lock_guard lock(mu);
    return records.size();
  }
};

class TestServer {
 public:
  explicit TestServer(Router router, ServerOptions options = {}, Observer observer = {}) {
    options.bind = "127.0.0.1";
    options.port = 0;
    server_ = std::make_unique<Server>(io_, options, std::move(router), std::move(observer));
    auto started = server_->Start();
    EXPECT_TRUE(started.ok()) << (started.ok() ? "" : started.error().message);
    for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { io_.run(); });
  }
  ~TestServer() {
    Stop();
    work_.reset();
    io_.stop();
    for (auto& t : threads_) t.join();
    server_.reset();
  }

  std::future<void> StopAsync() {
    stopped_ = true;
    return asio::co_spawn(io_, server_->Stop(), asio::use_future);
  }
  void Stop() {
    if (!stopped_) StopAsync().get();
  }
  uint16_t port() const { return server_->port(); }
  Server& server() { return *server_; }
  asio::io_context& io() { return io_; }

 private:
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_{io_.get_executor()};
  std::unique_ptr<Server> server_;
  std::vector<std::thread> threads_;
  bool stopped_ = false;
};

asio::awaitable<void> Sleep(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(asio::use_awaitable);
}

asio::awaitable<void> Reply(Exchange& ex, int status, std::string body) {
  Response r;
  r.status = status;
  r.headers.emplace_back("Content-Type", "text/plain");
  r.body = std::move(body);
  (void)co_await ex.Send(std::move(r));
}

Router BasicRouter() {
  Router router;
  router.Add("GET", "/hello", [](Exchange& ex) -> asio::awaitable<void> {
    co_await Reply(ex, 200, "hello");
  });
  router.Add("GET", "/api/videos/{id}", [](Exchange& ex) -> asio::awaitable<void> {
    co_await Reply(ex, 200, "video " + std::string(ex.request().param("id")));
  });
  router.Add("DELETE", "/api/videos/{id}", [](Exchange& ex) -> asio::awaitable<void> {
    co_await Reply(ex, 204, "");
  });
  router.Add("GET", "/static/{path...}", [](Exchange& ex) -> asio::awaitable<void> {
    co_await Reply(ex, 200, "static " + std::string(ex.request().param("path")));
  });
  router.Add("GET", "/query", [](Exchange& ex) -> asio::awaitable<void> {
    co_await Reply(ex, 200, std::string(ex.request().query("q").value_or("<none>")));
  });
  router.Add("POST", "/echo", [](Exchange& ex) -> asio::awaitable<void> {
    auto body = co_await ex.ReadAll(1 << 20);
    if (!body) {
      int status = body.code() == errc::body_too_large ? 413 : 400;
      (void)co_await ex.Send(JsonError(status, "bad_body", body.error().message));
      co_return;
    }
    co_await Reply(ex, 200, std::move(*body));
  });
  router.Add("POST", "/count", [](Exchange& ex) -> asio::awaitable<void> {
    std::vector<char> buf(100'000);
    uint64_t total = 0;
    for (;;) {
      auto n = co_await ex.ReadSome(buf);
      if (!n) {
        (void)co_await ex.Send(JsonError(400, "bad_body", n.error().message));
        co_return;
      }
      if (*n == 0) break;
      total += *n;
    }
    co_await Reply(ex, 200, std::to_string(total) + " " + std::to_string(ex.body_bytes_read()));
  });
  router.Add("POST", "/reject", [](Exchange& ex) -> asio::awaitable<void> {
    (void)co_await ex.Send(JsonError(401, "unauthorized", "sign in"));
  });
  router.Add("GET", "/throw", [](Exchange&) -> asio::awaitable<void> {
    throw std::runtime_error("boom");
    co_return;
  });
  router.Add("GET", "/silent", [](Exchange&) -> asio::awaitable<void> { co_return; });
  router.Add("GET", "/events", [](Exchange& ex) -> asio::awaitable<void> {
    Headers headers;  // (gcc 12 miscompiles braced pair lists inside coroutines)
    headers.emplace_back("Content-Type", "text/event-stream");
    if (!co_await ex.BeginStream(200, std::move(headers))) co_return;
    for (int i = 0; i < 3; ++i) {
      if (!co_await ex.WriteStream("data: " + std::to_string(i) + "\n\n")) co_return;
    }
    (void)co_await ex.EndStream();
  });
  return router;
}

// ---------------------------------------------------------------------------
// Pure functions.

TEST(PercentDecode, DecodesAndRejectsBadEscapes) {
  EXPECT_EQ(PercentDecode("a%20b%2Fc", false), "a b/c");
  EXPECT_EQ(PercentDecode("a+b", false), "a+b");
  EXPECT_EQ(PercentDecode("a+b%2b", true), "a b+");
  EXPECT_EQ(PercentDecode("%e2%82%AC", false), "\xe2\x82\xac");
  EXPECT_EQ(PercentDecode("", false), "");
  EXPECT_EQ(PercentDecode("%00", false), std::nullopt);
  EXPECT_EQ(PercentDecode("a%0", false), std::nullopt);
  EXPECT_EQ(PercentDecode("a%", false), std::nullopt);
  EXPECT_EQ(PercentDecode("%zz", false), std::nullopt);
  EXPECT_EQ(PercentDecode("%g0", false), std::nullopt);
  EXPECT_EQ(PercentDecode(std::string_view("a\0b", 3), false), std::nullopt);
}

TEST(JsonError, ShapeAndEscaping) {
  Response r = JsonError(404, "not_found", "say \"hi\"\n");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body, R"({"error":{"code":"not_found","message":"say \"hi\"\n"}})");
  ASSERT_EQ(r.headers.size(), 1u);
  EXPECT_EQ(r.headers[0].second, "application/json");
}

TEST(Router, MatchesLiteralsParamsAndRest) {
  Router router = BasicRouter();
  Request req;
  int status = 0;
  std::string allow;
  req.method_ = "GET";
  req.path_ = "/api/videos/abc 1";
  ASSERT_NE(router.Match(req, &status, &allow), nullptr);
  EXPECT_EQ(req.param("id"), "abc 1");
  EXPECT_EQ(req.route(), "/api/videos/{id}");
  EXPECT_EQ(req.param("nope"), "");

  req.path_ = "/static/js/app.js";
  ASSERT_NE(router.Match(req, &status, &allow), nullptr);
  EXPECT_EQ(req.param("path"), "js/app.js");
  req.path_ = "/static/";
  ASSERT_NE(router.Match(req, &status, &allow), nullptr);
  EXPECT_EQ(req.param("path"), "");
  req.path_ = "/static";
  EXPECT_EQ(router.Match(req, &status, &allow), nullptr);
  EXPECT_EQ(status, 404);

  req.path_ = "/api/videos/";  // {id} needs a non-empty segment
  EXPECT_EQ(router.Match(req, &status, &allow), nullptr);
  EXPECT_EQ(status, 404);
  req.path_ = "/api/videos/a/b";
  EXPECT_EQ(router.Match(req, &status, &allow), nullptr);
  EXPECT_EQ(status, 404);

  req.method_ = "PUT";
  req.path_ = "/api/videos/x";
  EXPECT_EQ(router.Match(req, &status, &allow), nullptr);
  EXPECT_EQ(status, 405);
  EXPECT_EQ(allow, "GET, HEAD, DELETE");
  EXPECT_EQ(req.route(), "");

  req.method_ = "HEAD";  // HEAD falls back to GET
  ASSERT_NE(router.Match(req, &status, &allow), nullptr);
  EXPECT_EQ(req.route(), "/api/videos/{id}");

  req.method_ = "GET";
  req.path_ = std::string("/api/videos/a\0b", 15);
  EXPECT_EQ(router.Match(req, &status, &allow), nullptr);
  EXPECT_EQ(status, 404);
}

TEST(Router, FirstAddedMatchWins) {
  Router router;
  int which = 0;
  router.Add("GET", "/a/{x}", [&](Exchange&) -> asio::awaitable<void> { which = 1; co_return; });
  router.Add("GET", "/a/b", [&](Exchange&) -> asio::awaitable<void> { which = 2; co_return; });
  Request req;
  req.method_ = "GET";
  req.path_ = "/a/b";
  int status = 0;
  EXPECT_NE(router.Match(req, &status, nullptr), nullptr);
  EXPECT_EQ(req.route(), "/a/{x}");
  EXPECT_EQ(req.param("x"), "b");
}

TEST(RequestHead, ParsesFieldsQueryAndFraming) {
  detail::RequestHead head;
  auto err = detail::ParseRequestHead(
      "POST /a%20b/c?q=x+y&empty&k=%26 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a: 2\r\n"
      "Content-Length: 7\r\nExpect: 100-continue\r\n\r\n",
      {}, &head);
  ASSERT_FALSE(err) << err->message;
  const Request& r = head.request;
  EXPECT_EQ(r.method(), "POST");
  EXPECT_EQ(r.target(), "/a%20b/c?q=x+y&empty&k=%26");
  EXPECT_EQ(r.path(), "/a b/c");
  EXPECT_EQ(r.query("q"), "x y");
  EXPECT_EQ(r.query("empty"), "");
  EXPECT_EQ(r.query("k"), "&");
  EXPECT_EQ(r.query("none"), std::nullopt);
  EXPECT_EQ(r.header("x-A"), "1");
  EXPECT_EQ(r.headers().size(), 5u);
  EXPECT_EQ(r.content_length(), 7u);
  EXPECT_FALSE(r.chunked());
  EXPECT_TRUE(head.expect_continue);
  EXPECT_TRUE(head.keep_alive);
  EXPECT_EQ(head.version, 11u);

  // The same object is reused for the next request.
  err = detail::ParseRequestHead("GET http://example.com/x?y=1 HTTP/1.0\r\n\r\n", {}, &head);
  ASSERT_FALSE(err) << err->message;
  EXPECT_EQ(head.request.path(), "/x");
  EXPECT_EQ(head.request.query("y"), "1");
  EXPECT_EQ(head.request.headers().size(), 0u);
  EXPECT_EQ(head.request.content_length(), std::nullopt);
  EXPECT_FALSE(head.keep_alive);
  EXPECT_FALSE(head.expect_continue);
}

TEST(RequestHead, RefusesWithTheRightStatus) {
  struct Case {
    std::string head;
    int status;
  };
  std::vector<Case> cases = {
      {"GARBAGE\r\n\r\n", 400},
      {"GET /x HTTP/1.1 junk\r\nHost: h\r\n\r\n", 400},
      {"GET /x HTTP/1.2\r\nHost: h\r\n\r\n", 505},
      {"GET /x HTTP/2.0\r\nHost: h\r\n\r\n", 505},
      {"GET /x HTTP/1.x\r\nHost: h\r\n\r\n", 400},
      {"GET /x HTTP/1.1\r\n\r\n", 400},                          // no Host
      {"GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},    // two Hosts
      {"GET x HTTP/1.1\r\nHost: h\r\n\r\n", 400},                // not a path
      {"GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400},
      {"GET /%zz HTTP/1.1\r\nHost: h\r\n\r\n", 400},
      {"GET /a%00b HTTP/1.1\r\nHost: h\r\n\r\n", 400},
      {"GET /a/../b HTTP/1.1\r\nHost: h\r\n\r\n", 400},
      {"GET /a/%2e%2e/b HTTP/1.1\r\nHost: h\r\n\r\n", 400},
      {"GET /a?x=%zz HTTP/1.1\r\nHost: h\r\n\r\n", 400},
      {"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400},
      {"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: abc\r\n\r\n", 400},
      {"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 400},
      {"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
       400},
      {"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
       400},
      {"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
      {"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
      {"POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"POST /x HTTP/1.1\r\nHost: h\r\nExpect: magic\r\n\r\n", 417},
      {"GET /x HTTP/1.1\r\nHost: h\r\nBad Name: v\r\n\r\n", 400},
  };
  for (const Case& c : cases) {
    detail::RequestHead head;
    auto err = detail::ParseRequestHead(c.head, {}, &head);
    ASSERT_TRUE(err) << c.head;
    EXPECT_EQ(err->status, c.status) << c.head << " -> " << err->message;
  }
  // Same Content-Length twice is fine.
  detail::RequestHead head;
  EXPECT_FALSE(detail::ParseRequestHead(
      "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", {}, &head));
  EXPECT_FALSE(detail::ParseRequestHead("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", {}, &head));
  // Header count limit.
  std::string many = "GET /x HTTP/1.1\r\nHost: h\r\n";
  for (int i = 0; i < 3; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
  many += "\r\n";
  detail::HeadLimits limits;
  limits.max_header_count = 3;
  auto err = detail::ParseRequestHead(many, limits, &head);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->status, 431);
  limits.max_header_count = 4;
  EXPECT_FALSE(detail::ParseRequestHead(many, limits, &head));
}

TEST(RequestHead, FindHeadEnd) {
  EXPECT_EQ(detail::FindHeadEnd("GET / HTTP/1.1\r\n\r\nrest", 100), 18u);
  EXPECT_EQ(detail::FindHeadEnd("GET / HTTP/1.1\r\n\r", 100), std::string_view::npos);
  EXPECT_EQ(detail::FindHeadEnd("GET / HTTP/1.1\r\n\r\n", 17), std::string_view::npos);
  EXPECT_EQ(detail::FindHeadEnd("GET / HTTP/1.1\r\n\r\n", 18), 18u);
  // A terminator straddling the previous search's end is found.
  EXPECT_EQ(detail::FindHeadEnd("GET / HTTP/1.1\r\n\r\n", 100, 17), 18u);
}

std::string DecodeChunked(std::string_view wire, size_t in_step, size_t out_size, bool* ok) {
  detail::ChunkedDecoder d;
  std::string out;
  std::vector<char> buf(out_size);
  size_t fed = 0;
  while (!d.done() && !d.failed() && fed < wire.size()) {
    std::string_view in = wire.substr(fed, in_step);
    while (!in.empty() && !d.done() && !d.failed()) {
      auto step = d.Decode(in, buf);
      out.append(buf.data(), step.produced);
      in.remove_prefix(step.consumed);
      fed += step.consumed;
      if (step.consumed == 0 && step.produced == 0) break;
    }
  }
  *ok = d.done();
  return out;
}

TEST(ChunkedDecoder, DecodesInAnyPieces) {
  const std::string wire =
      "5\r\nhello\r\n6;ext=1;q=\"x\"\r\n world\r\nA \r\n0123456789\r\n0\r\nTrailer: t\r\n\r\n";
  for (size_t in_step : {1, 2, 3, 7, 100}) {
    for (size_t out_size : {1, 4, 64}) {
      bool ok = false;
      EXPECT_EQ(DecodeChunked(wire, in_step, out_size, &ok), "hello world0123456789");
      EXPECT_TRUE(ok) << in_step << " " << out_size;
    }
  }
  // Stops at the end of the body: what follows belongs to the next request.
  detail::ChunkedDecoder d;
  char buf[16];
  auto step = d.Decode("1\r\nx\r\n0\r\n\r\nGET /", buf);
  EXPECT_TRUE(d.done());
  EXPECT_EQ(step.consumed, 11u);
  EXPECT_EQ(step.produced, 1u);
}

TEST(ChunkedDecoder, RejectsMalformed) {
  for (std::string wire : {"x\r\n", "5\nhello\r\n", "5\r\nhelloX\r\n", "\r\n",
                           "11111111111111111\r\n", "5 x\r\n", "0\r\nbad\n\r\n"}) {
    bool ok = true;
    DecodeChunked(wire, 1, 8, &ok);
    EXPECT_FALSE(ok) << wire;
    detail::ChunkedDecoder d;
    char buf[8];
    d.Decode(wire, buf);
    EXPECT_TRUE(d.failed() || !d.done()) << wire;
  }
  detail::ChunkedDecoder d;
  char buf[8];
  std::string long_ext = "1;" + std::string(5000, 'a') + "\r\n";
  d.Decode(long_ext, buf);
  EXPECT_TRUE(d.failed());
}

TEST(ParseRange, Table) {
  struct Case {
    std::string value;
    uint64_t size;
    RangeSpec::Kind kind;
    std::vector<std::pair<uint64_t, uint64_t>> ranges;
  };
  using K = RangeSpec;
  std::vector<Case> cases = {
      {"bytes=0-0", 10, K::kRanges, {{0, 0}}},
      {"bytes=0-9", 10, K::kRanges, {{0, 9}}},
      {"bytes=0-100", 10, K::kRanges, {{0, 9}}},
      {"bytes=5-", 10, K::kRanges, {{5, 9}}},
      {"bytes=-3", 10, K::kRanges, {{7, 9}}},
      {"bytes=-30", 10, K::kRanges, {{0, 9}}},
      {"BYTES = 1 - 2 , 4-5", 10, K::kRanges, {{1, 2}, {4, 5}}},
      {" bytes=1-2,,\t,4-5 ", 10, K::kRanges, {{1, 2}, {4, 5}}},
      {"bytes=4-5,0-1", 10, K::kRanges, {{0, 1}, {4, 5}}},          // sorted
      {"bytes=0-4,3-6", 10, K::kRanges, {{0, 6}}},                  // overlapping
      {"bytes=0-4,5-6", 10, K::kRanges, {{0, 6}}},                  // adjacent
      {"bytes=0-1,-2,5-", 10, K::kRanges, {{0, 1}, {5, 9}}},
      {"bytes=0-1,20-30", 10, K::kRanges, {{0, 1}}},                // unsatisfiable part dropped
      {"bytes=10-", 10, K::kUnsatisfiable, {}},
      {"bytes=10-20,30-", 10, K::kUnsatisfiable, {}},
      {"bytes=-0", 10, K::kUnsatisfiable, {}},
      {"bytes=0-0", 0, K::kUnsatisfiable, {}},
      {"bytes=-5", 0, K::kUnsatisfiable, {}},
      {"bytes=99999999999999999999999-", 10, K::kUnsatisfiable, {}},
      {"bytes=0-99999999999999999999999", 10, K::kRanges, {{0, 9}}},
      {"bytes=5-4", 10, K::kNone, {}},
      {"bytes=", 10, K::kNone, {}},
      {"bytes=,", 10, K::kNone, {}},
      {"bytes=a-b", 10, K::kNone, {}},
      {"bytes=1-2-3", 10, K::kNone, {}},
      {"bytes=--1", 10, K::kNone, {}},
      {"bytes=1", 10, K::kNone, {}},
      {"bytes=+1-2", 10, K::kNone, {}},
      {"bytes=1 2-3", 10, K::kNone, {}},
      {"items=0-1", 10, K::kNone, {}},
      {"0-1", 10, K::kNone, {}},
      {"", 10, K::kNone, {}},
      {"bytes=0-1,2-3,4-5,6-7,8-9,10-11,12-13,14-15,16-17,18-19,20-21,22-23,24-25,26-27,28-29,"
       "30-31,32-33",
       100, K::kNone, {}},  // 17 > max_ranges
  };
  for (const Case& c : cases) {
    RangeSpec spec = ParseRange(c.value, c.size);
    EXPECT_EQ(spec.kind, c.kind) << c.value;
    std::vector<std::pair<uint64_t, uint64_t>> got;
    for (auto r : spec.ranges) got.emplace_back(r.first, r.last);
    EXPECT_EQ(got, c.ranges) << c.value;
  }
  EXPECT_EQ(ParseRange("bytes=0-1,3-4", 10, 1).kind, RangeSpec::kNone);
}

TEST(Conditional, EtagsAndIfRange) {
  const std::string etag = "\"abc-1\"";
  EXPECT_TRUE(detail::EtagListMatches("\"abc-1\"", etag, false));
  EXPECT_TRUE(detail::EtagListMatches("W/\"abc-1\"", etag, false));
  EXPECT_FALSE(detail::EtagListMatches("W/\"abc-1\"", etag, true));
  EXPECT_TRUE(detail::EtagListMatches(" \"x\" , W/\"abc-1\"", etag, false));
  EXPECT_TRUE(detail::EtagListMatches("*", etag, true));
  EXPECT_FALSE(detail::EtagListMatches("\"abc\"", etag, false));
  EXPECT_FALSE(detail::EtagListMatches("abc-1", etag, false));
  EXPECT_FALSE(detail::EtagListMatches("\"abc-1", etag, false));
  EXPECT_TRUE(detail::IfRangeMatches("\"abc-1\"", etag, 0));
  EXPECT_FALSE(detail::IfRangeMatches("W/\"abc-1\"", etag, 0));
  EXPECT_FALSE(detail::IfRangeMatches("\"other\"", etag, 0));
  EXPECT_TRUE(detail::IfRangeMatches("Sun, 06 Nov 1994 08:49:37 GMT", etag, 784111777));
  EXPECT_FALSE(detail::IfRangeMatches("Sun, 06 Nov 1994 08:49:38 GMT", etag, 784111777));
  EXPECT_FALSE(detail::IfRangeMatches("yesterday", etag, 784111777));
}

TEST(FileResponse, MakeETagAndContentType) {
  EXPECT_EQ(MakeETag(255, 4096), "\"ff-1000\"");
  EXPECT_EQ(MakeETag(0, 0), "\"0-0\"");
  EXPECT_EQ(ContentTypeFor("clip.mp4"), "video/mp4");
  EXPECT_EQ(ContentTypeFor("dir.x/CLIP.MP4"), "video/mp4");
  EXPECT_EQ(ContentTypeFor("a.mov"), "video/quicktime");
  EXPECT_EQ(ContentTypeFor("a.mkv"), "video/x-matroska");
  EXPECT_EQ(ContentTypeFor("index.m3u8"), "application/vnd.apple.mpegurl");
  EXPECT_EQ(ContentTypeFor("seg1.ts"), "video/mp2t");
  EXPECT_EQ(ContentTypeFor("seg1.m4s"), "video/iso.segment");
  EXPECT_EQ(ContentTypeFor("subs.vtt"), "text/vtt; charset=utf-8");
  EXPECT_EQ(ContentTypeFor("app.js"), "text/javascript; charset=utf-8");
  EXPECT_EQ(ContentTypeFor("index.html"), "text/html; charset=utf-8");
  EXPECT_EQ(ContentTypeFor("logo.svg"), "image/svg+xml");
  EXPECT_EQ(ContentTypeFor("font.woff2"), "font/woff2");
  EXPECT_EQ(ContentTypeFor("README"), "application/octet-stream");
  EXPECT_EQ(ContentTypeFor("a.mp4/README"), "application/octet-stream");
  EXPECT_EQ(ContentTypeFor("a.unknown"), "application/octet-stream");
}

// ---------------------------------------------------------------------------
// End to end over TCP.

TEST(Server, RoutesParamsAnd404And405) {
  Observed observed;
  TestServer ts(BasicRouter(), {}, observed.observer());
  Client c(ts.port());
  ASSERT_TRUE(c.connected());
  c.Send(Get("/api/videos/abc%20d"));
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "video abc d");
  EXPECT_EQ(r->header("Server"), "stream-hub");
  EXPECT_TRUE(r->header("Date"));
  EXPECT_EQ(r->header("Content-Length"), "11");

  c.Send(Get("/static/css/site.css"));
  r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "static css/site.css");

  c.Send(Get("/query?q=a+b%21"));
  r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "a b!");

  c.Send(Get("/nothing/here"));
  r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(r->header("Content-Type"), "application/json");
  EXPECT_NE(r->body.find("\"code\":\"not_found\""), std::string::npos);

  c.Send("PUT /api/videos/x HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
  r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405);
  EXPECT_EQ(r->header("Allow"), "GET, HEAD, DELETE");

  c.Send("DELETE /api/videos/x HTTP/1.1\r\nHost: t\r\n\r\n");
  r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 204);
  EXPECT_FALSE(r->header("Content-Length"));

  ts.Stop();
  std::lock_guard lock(observed.mu);
  ASSERT_EQ(observed.records.size(), 6u);
  EXPECT_EQ(observed.records[0], std::make_tuple(std::string("GET"),
                                                 std::string("/api/videos/{id}"), 200,
                                                 std::string()));
  EXPECT_EQ(std::get<1>(observed.records[3]), "unmatched");
  EXPECT_EQ(std::get<2>(observed.records[3]), 404);
}

TEST(Server, KeepAliveAndPipelining) {
  TestServer ts(BasicRouter());
  Client c(ts.port());
  c.Send(Get("/hello"));
  auto r1 = c.Read();
  ASSERT_TRUE(r1);
  EXPECT_EQ(r1->body, "hello");
  EXPECT_FALSE(r1->header("Connection"));
  c.Send(Get("/api/videos/2"));
  auto r2 = c.Read();
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->body, "video 2");
  EXPECT_EQ(ts.server().connections(), 1u);

  // Three requests in one write, a stray CRLF between two of them.
  c.Send(Get("/hello") + "\r\n" + Get("/api/videos/3") +
         "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc");
  for (std::string expected : {"hello", "video 3", "abc"}) {
    auto r = c.Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, expected);
  }
}

TEST(Server, ConnectionCloseAndHttp10) {
  TestServer ts(BasicRouter());
  {
    Client c(ts.port());
    c.Send("GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    auto r = c.Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->header("Connection"), "close");
    EXPECT_TRUE(c.ClosedWithoutData());
  }
  {
    Client c(ts.port());
    c.Send("GET /hello HTTP/1.0\r\n\r\n");
    auto r = c.Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, "hello");
    EXPECT_EQ(r->header("Connection"), "close");
    EXPECT_TRUE(c.ClosedWithoutData());
  }
  {
    Client c(ts.port());
    c.Send("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    auto r = c.Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->header("Connection"), "keep-alive");
    c.Send("GET /hello HTTP/1.0\r\n\r\n");
    r = c.Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, "hello");
  }
}

TEST(Server, HeadSendsHeadOnly) {
  TestServer ts(BasicRouter());
  Client c(ts.port());
  c.Send("HEAD /api/videos/42 HTTP/1.1\r\nHost: t\r\n\r\n");
  auto r = c.Read(/*head_only=*/true);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("Content-Length"), "8");  // "video 42"
  // No body bytes followed: the next response starts right away.
  c.Send(Get("/hello"));
  r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "hello");
}

TEST(Server, ExpectContinue) {
  TestServer ts(BasicRouter());
  Client c(ts.port());
  c.Send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
  auto interim = c.Read();
  ASSERT_TRUE(interim);
  EXPECT_EQ(interim->status, 100);
  c.Send("hello");
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "hello");

  // A handler that answers without reading: no 100, and the connection closes
  // (the client may or may not send the body now).
  c.Send("POST /reject HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
  r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(r->header("Connection"), "close");
  EXPECT_TRUE(c.ClosedWithoutData());
}

TEST(Server, ChunkedRequestBody) {
  TestServer ts(BasicRouter());
  Client c(ts.port());
  c.Send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
         "5\r\nhello\r\n6;name=v\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n");
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "hello world");

  // Large chunks arrive in pieces; ReadSome reads straight into the buffer.
  std::string big(300'000, 'x');
  c.Send("POST /count HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
  for (int i = 0; i < 3; ++i) {
    char size_line[32];
    std::snprintf(size_line, sizeof size_line, "%zx\r\n", big.size());
    c.Send(size_line);
    c.Send(big);
    c.Send("\r\n");
  }
  c.Send("0\r\n\r\n");
  r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "900000 900000");

  // Malformed chunk framing: the handler sees bad_body.
  c.Send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
  r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
}

TEST(Server, BodyOverLimitIsTheHandlersCall) {
  TestServer ts(BasicRouter());
  {
    // Declared length over ReadAll's limit: 413 without reading the body,
    // and the connection closes rather than drain 2 MiB.
    Client c(ts.port());
    c.Send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2097152\r\n\r\n" +
           std::string(1000, 'x'));
    auto r = c.Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 413);
    EXPECT_EQ(r->header("Connection"), "close");
    EXPECT_TRUE(c.ReadToEof());
  }
  {
    // Chunked, no declared length: refused once the body passes the limit.
    Client c(ts.port());
    c.Send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    std::string piece(512 * 1024, 'y');
    for (int i = 0; i < 3; ++i) c.Send("80000\r\n" + piece + "\r\n");
    auto r = c.Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 413);
  }
  {
    // A small unread body is drained: the connection stays usable.
    Client c(ts.port());
    c.Send("POST /reject HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n" +
           std::string(1000, 'z'));
    auto r = c.Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 401);
    EXPECT_FALSE(r->header("Connection"));
    c.Send(Get("/hello"));
    r = c.Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, "hello");
  }
}

TEST(Server, HeaderLimits) {
  ServerOptions options;
  options.max_header_bytes = 4096;
  options.max_header_count = 10;
  Observed observed;
  TestServer ts(BasicRouter(), options, observed.observer());
  {
    Client c(ts.port());  // one huge header, more than the limit, sent in full
    c.Send("GET /hello HTTP/1.1\r\nHost: t\r\nX-Flood: " + std::string(64 * 1024, 'a') +
           "\r\n\r\n");
    auto r = c.Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 431);
    EXPECT_EQ(r->header("Connection"), "close");
    EXPECT_NE(r->body.find("header_too_large"), std::string::npos);
    EXPECT_TRUE(c.ReadToEof());
  }
  {
    Client c(ts.port());  // many small headers
    std::string req = "GET /hello HTTP/1.1\r\nHost: t\r\n";
    for (int i = 0; i < 10; ++i) req += "X-H" + std::to_string(i) + ": v\r\n";
    c.Send(req + "\r\n");
    auto r = c.Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 431);
    EXPECT_NE(r->body.find("too_many_headers"), std::string::npos);
  }
  {
    Client c(ts.port());  // exactly at the count limit is fine
    std::string req = "GET /hello HTTP/1.1\r\nHost: t\r\n";
    for (int i = 0; i < 9; ++i) req += "X-H" + std::to_string(i) + ": v\r\n";
    c.Send(req + "\r\n");
    auto r = c.Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
  }
  {
    Client c(ts.port());  // a request line longer than the limit
    c.Send("GET /" + std::string(8000, 'a') + " HTTP/1.1\r\nHost: t\r\n\r\n");
    auto r = c.Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 414);
  }
  ts.Stop();
  std::lock_guard lock(observed.mu);
  ASSERT_EQ(observed.records.size(), 4u);
  EXPECT_EQ(std::get<2>(observed.records[0]), 431);
  EXPECT_EQ(std::get<3>(observed.records[0]), "header_too_large");
}

TEST(Server, MalformedHeadsGet400AndClose) {
  TestServer ts(BasicRouter());
  for (std::string bad : {
           std::string("GARBAGE\r\n\r\n"),
           std::string("GET /hello HTTP/1.1 x\r\nHost: t\r\n\r\n"),
           std::string("GET /hello\r\nHost: t\r\n\r\n"),
           std::string("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
                       "Content-Length: 4\r\n\r\nabcd"),
           std::string("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n"),
           std::string("GET /a%zz HTTP/1.1\r\nHost: t\r\n\r\n"),
           std::string("GET /a%00 HTTP/1.1\r\nHost: t\r\n\r\n"),
       }) {
    Client c(ts.port());
    c.Send(bad);
    auto r = c.Read();
    ASSERT_TRUE(r) << bad;
    EXPECT_EQ(r->status, 400) << bad;
    EXPECT_EQ(r->header("Content-Type"), "application/json");
    EXPECT_EQ(r->header("Connection"), "close");
    EXPECT_TRUE(c.ReadToEof()) << bad;
  }
}

TEST(Server, HandlerFailuresBecome500) {
  Observed observed;
  TestServer ts(BasicRouter(), {}, observed.observer());
  Client c(ts.port());
  c.Send(Get("/throw"));
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 500);
  EXPECT_EQ(r->header("Content-Type"), "application/json");
  c.Send(Get("/silent"));  // the connection survives; a handler that sends nothing -> 500
  r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 500);
  ts.Stop();
  std::lock_guard lock(observed.mu);
  ASSERT_EQ(observed.records.size(), 2u);
  EXPECT_EQ(std::get<3>(observed.records[0]), "handler threw: boom");
  EXPECT_EQ(std::get<3>(observed.records[1]), "handler sent no response");
}

TEST(Server, StreamsChunked) {
  TestServer ts(BasicRouter());
  Client c(ts.port());
  c.Send(Get("/events"));
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->header("Transfer-Encoding"), "chunked");
  EXPECT_FALSE(r->header("Content-Length"));
  EXPECT_EQ(r->body, "data: 0\n\ndata: 1\n\ndata: 2\n\n");
  c.Send(Get("/hello"));
  r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "hello");
}

TEST(Server, SlowLorisGets408WithinTheHeaderTimeout) {
  ServerOptions options;
  options.header_timeout = 200ms;
  Observed observed;
  TestServer ts(BasicRouter(), options, observed.observer());
  Client c(ts.port(), 5s);
  auto start = SteadyClock::now();
  // Trickle a byte every 40 ms: each arrival must not extend the deadline.
  std::string head = "GET /hello HTTP/1.1\r\nHost: t\r\nX-Slow: ";
  c.Send(head);
  std::atomic<bool> done{false};
  std::thread trickle([&] {
    while (!done) {
      std::this_thread::sleep_for(40ms);
      if (!c.Send("a")) break;
    }
  });
  auto r = c.Read();
  auto elapsed = SteadyClock::now() - start;
  done = true;
  trickle.join();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 408);
  EXPECT_EQ(r->header("Connection"), "close");
  EXPECT_GE(elapsed, 150ms);
  EXPECT_LT(elapsed, 3s);  // a deadline check, not a benchmark: generous for a loaded box
  ts.Stop();
  EXPECT_EQ(observed.size(), 1u);
}

TEST(Server, IdleConnectionsCloseSilently) {
  ServerOptions options;
  options.header_timeout = 200ms;
  options.idle_timeout = 200ms;
  TestServer ts(BasicRouter(), options);
  {
    Client c(ts.port(), 5s);  // never sends a byte
    auto start = SteadyClock::now();
    EXPECT_TRUE(c.ClosedWithoutData());
    EXPECT_LT(SteadyClock::now() - start, 3s);
  }
  {
    Client c(ts.port(), 5s);  // one request, then idle on keep-alive
    c.Send(Get("/hello"));
    ASSERT_TRUE(c.Read());
    auto start = SteadyClock::now();
    EXPECT_TRUE(c.ClosedWithoutData());
    EXPECT_GE(SteadyClock::now() - start, 150ms);
    EXPECT_LT(SteadyClock::now() - start, 3s);
  }
}

TEST(Server, ConnectionCapAnswers503) {
  ServerOptions options;
  options.max_connections = 1;
  TestServer ts(BasicRouter(), options);
  Client first(ts.port());
  first.Send(Get("/hello"));
  ASSERT_TRUE(first.Read());
  Client second(ts.port());
  auto r = second.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(r->header("Retry-After"), "1");
  EXPECT_EQ(r->header("Connection"), "close");
  EXPECT_TRUE(second.ReadToEof());
  first.Send(Get("/hello"));  // the first one is unaffected
  ASSERT_TRUE(first.Read());
}

TEST(Server, StopLetsInFlightFinishAndClosesIdle) {
  std::promise<void> entered;
  std::atomic<bool> saw_stopping{false};
  Router router = BasicRouter();
  router.Add("GET", "/slow", [&](Exchange& ex) -> asio::awaitable<void> {
    entered.set_value();
    co_await Sleep(300ms);
    saw_stopping = ex.stopping();
    co_await Reply(ex, 200, "slow done");
  });
  TestServer ts(std::move(router));
  Client idle(ts.port());
  idle.Send(Get("/hello"));
  ASSERT_TRUE(idle.Read());
  Client busy(ts.port());
  busy.Send(Get("/slow"));
  entered.get_future().wait();
  EXPECT_EQ(ts.server().connections(), 2u);

  auto stopped = ts.StopAsync();
  EXPECT_TRUE(idle.ClosedWithoutData());  // closed at once, before the slow one ends
  EXPECT_EQ(stopped.wait_for(0ms), std::future_status::timeout);
  auto r = busy.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "slow done");
  EXPECT_EQ(r->header("Connection"), "close");
  EXPECT_TRUE(saw_stopping);
  EXPECT_EQ(stopped.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(ts.server().connections(), 0u);
  Client late(ts.port());
  EXPECT_FALSE(late.connected());
}

TEST(Server, StopClosesWhatOutlivesTheGrace) {
  Router router;
  router.Add("GET", "/forever", [](Exchange& ex) -> asio::awaitable<void> {
    Headers headers;
    if (!co_await ex.BeginStream(200, std::move(headers))) co_return;
    while (co_await ex.WriteStream("tick\n")) co_await Sleep(20ms);
  });
  ServerOptions options;
  options.shutdown_grace = 200ms;
  TestServer ts(std::move(router), options);
  Client c(ts.port());
  c.Send(Get("/forever"));
  ASSERT_FALSE(c.RecvSome().empty());  // the stream is running
  auto start = SteadyClock::now();
  ts.Stop();
  EXPECT_GE(SteadyClock::now() - start, 150ms);
  EXPECT_LT(SteadyClock::now() - start, 5s);
  EXPECT_EQ(ts.server().connections(), 0u);
  EXPECT_TRUE(c.ReadToEof());
}

// ---------------------------------------------------------------------------
// Files.

class FileTest : public ::testing::Test {
 protected:
  void SetUp() override { Create(100'000); }
  void TearDown() override {
    if (fd_ >= 0) ::close(fd_);
    ::unlink(path_.c_str());
  }
  void Create(size_t size) {
    if (fd_ >= 0) {
      ::close(fd_);
      ::unlink(path_.c_str());
    }
    char tmpl[] = "/tmp/http_test_XXXXXX";
    fd_ = ::mkstemp(tmpl);
    ASSERT_GE(fd_, 0);
    path_ = tmpl;
    content_.resize(size);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < size; ++i) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      content_[i] = static_cast<char>(x);
    }
    for (size_t done = 0; done < size;) {
      ssize_t n = ::write(fd_, content_.data() + done, size - done);
      ASSERT_GT(n, 0);
      done += static_cast<size_t>(n);
    }
    file_.fd = fd_;
    file_.size = size;
    file_.mtime_unix_nanos = 1'700'000'000'123'456'789;
    file_.content_type = "video/mp4";
    file_.cache_control = "public, max-age=60";
    file_.extra_headers = {{"Content-Disposition", "inline"}};
  }
  FileToServe ReadAtFile() const {
    FileToServe f = file_;
    f.fd = -1;
    int fd = fd_;
    f.read_at = [fd](uint64_t offset, std::span<char> buf) -> Result<size_t> {
      ssize_t n = ::pread(fd, buf.data(), buf.size(), static_cast<off_t>(offset));
      if (n < 0) return MakeError(std::error_code(errno, std::system_category()), "pread");
      return static_cast<size_t>(n);
    };
    return f;
  }
  Router FileRouter() {
    Router router;
    router.Add("GET", "/file", [this](Exchange& ex) -> asio::awaitable<void> {
      (void)co_await ServeFile(ex, file_);
    });
    router.Add("GET", "/file-read-at", [this](Exchange& ex) -> asio::awaitable<void> {
      FileToServe f = ReadAtFile();
      (void)co_await ServeFile(ex, f);
    });
    router.Add("POST", "/file", [this](Exchange& ex) -> asio::awaitable<void> {
      (void)co_await ServeFile(ex, file_);
    });
    return router;
  }
  std::string Slice(uint64_t first, uint64_t last) const {
    return content_.substr(first, last - first + 1);
  }
  std::string LastModified() const { return FormatHttpDate(file_.mtime_unix_nanos / 1'000'000'000); }

  int fd_ = -1;
  std::string path_;
  std::string content_;
  FileToServe file_;
};

TEST_F(FileTest, FullSingleSuffixOpenRanges) {
  TestServer ts(FileRouter());
  Client c(ts.port());
  c.Send(Get("/file"));
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, content_);
  EXPECT_EQ(r->header("Content-Length"), "100000");
  EXPECT_EQ(r->header("Content-Type"), "video/mp4");
  EXPECT_EQ(r->header("Accept-Ranges"), "bytes");
  EXPECT_EQ(r->header("Cache-Control"), "public, max-age=60");
  EXPECT_EQ(r->header("Content-Disposition"), "inline");
  EXPECT_EQ(r->header("ETag"), MakeETag(100'000, file_.mtime_unix_nanos));
  EXPECT_EQ(r->header("Last-Modified"), LastModified());

  c.Send(Get("/file", "Range: bytes=1000-1999\r\n"));
  r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 206);
  EXPECT_EQ(r->header("Content-Range"), "bytes 1000-1999/100000");
  EXPECT_EQ(r->header("Content-Length"), "1000");
  EXPECT_EQ(r->body, Slice(1000, 1999));

  c.Send(Get("/file", "Range: bytes=-500\r\n"));
  r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 206);
  EXPECT_EQ(r->header("Content-Range"), "bytes 99500-99999/100000");
  EXPECT_EQ(r->body, Slice(99500, 99999));

  c.Send(Get("/file", "Range: bytes=99000-\r\n"));
  r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 206);
  EXPECT_EQ(r->header("Content-Range"), "bytes 99000-99999/100000");
  EXPECT_EQ(r->body, Slice(99000, 99999));

  c.Send(Get("/file", "Range: bytes=0-0\r\n"));
  r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, Slice(0, 0));
}

TEST_F(FileTest, MultipleRangesAreMultipart) {
  TestServer ts(FileRouter());
  Client c(ts.port());
  c.Send(Get("/file", "Range: bytes=0-99, 5000-5999, 500-600, 99990-\r\n"));
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 206);
  std::string type = r->header("Content-Type").value_or("");
  const std::string prefix = "multipart/byteranges; boundary=";
  ASSERT_EQ(type.rfind(prefix, 0), 0u) << type;
  std::string boundary = type.substr(prefix.size());
  EXPECT_EQ(r->header("Content-Length"), std::to_string(r->body.size()));
  EXPECT_FALSE(r->header("Content-Range"));

  std::vector<std::pair<uint64_t, uint64_t>> expected = {{0, 99}, {500, 600}, {5000, 5999},
                                                         {99990, 99999}};
  std::string_view body = r->body;
  const std::string delimiter = "\r\n--" + boundary;
  size_t pos = body.find(delimiter);
  ASSERT_NE(pos, std::string_view::npos);
  for (auto [first, last] : expected) {
    pos += delimiter.size();
    ASSERT_EQ(body.substr(pos, 2), "\r\n");
    size_t head_end = body.find("\r\n\r\n", pos);
    ASSERT_NE(head_end, std::string_view::npos);
    std::string_view part_head = body.substr(pos + 2, head_end - pos - 2);
    EXPECT_NE(part_head.find("Content-Type: video/mp4"), std::string_view::npos);
    std::string range = "Content-Range: bytes " + std::to_string(first) + "-" +
                        std::to_string(last) + "/100000";
    EXPECT_NE(part_head.find(range), std::string_view::npos) << part_head;
    size_t data_start = head_end + 4;
    size_t next = body.find(delimiter, data_start);
    ASSERT_NE(next, std::string_view::npos);
    EXPECT_EQ(body.substr(data_start, next - data_start), Slice(first, last));
    pos = next;
  }
  EXPECT_EQ(body.substr(pos), delimiter + "--\r\n");

  // The same through read_at.
  c.Send(Get("/file-read-at", "Range: bytes=0-99, 5000-5999, 500-600, 99990-\r\n"));
  auto r2 = c.Read();
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->status, 206);
  EXPECT_EQ(r2->body.size(), r->body.size());
}

TEST_F(FileTest, UnsatisfiableAndMalformedRanges) {
  TestServer ts(FileRouter());
  Client c(ts.port());
  c.Send(Get("/file", "Range: bytes=100000-\r\n"));
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 416);
  EXPECT_EQ(r->header("Content-Range"), "bytes */100000");

  c.Send(Get("/file", "Range: bytes=9-1\r\n"));
  r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, content_);

  c.Send(Get("/file", "Range: pages=1-2\r\n"));
  r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body.size(), content_.size());
}

TEST_F(FileTest, ConditionalRequests) {
  TestServer ts(FileRouter());
  Client c(ts.port());
  const std::string etag = MakeETag(100'000, file_.mtime_unix_nanos);

  c.Send(Get("/file", "If-None-Match: \"nope\", " + etag + "\r\n"));
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 304);
  EXPECT_EQ(r->header("ETag"), etag);
  EXPECT_FALSE(r->header("Content-Length"));

  c.Send(Get("/file", "If-None-Match: W/" + etag + "\r\n"));  // weak comparison
  r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 304);

  c.Send(Get("/file", "If-None-Match: \"other\"\r\nIf-Modified-Since: " + LastModified() + "\r\n"));
  r = c.Read();  // If-None-Match wins over If-Modified-Since
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);

  c.Send(Get("/file", "If-Modified-Since: " + LastModified() + "\r\n"));
  r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 304);

  c.Send(Get("/file", "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n"));
  r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);

  c.Send(Get("/file", "If-Match: \"other\"\r\n"));
  r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 412);

  c.Send(Get("/file", "Range: bytes=10-19\r\nIf-Range: \"changed\"\r\n"));
  r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, content_);

  c.Send(Get("/file", "Range: bytes=10-19\r\nIf-Range: " + etag + "\r\n"));
  r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 206);
  EXPECT_EQ(r->body, Slice(10, 19));

  c.Send(Get("/file", "Range: bytes=10-19\r\nIf-Range: " + LastModified() + "\r\n"));
  r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 206);

  c.Send("POST /file HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
  r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405);
  EXPECT_EQ(r->header("Allow"), "GET, HEAD");
}

TEST_F(FileTest, HeadGivesLengthWithoutBody) {
  TestServer ts(FileRouter());
  Client c(ts.port());
  c.Send("HEAD /file HTTP/1.1\r\nHost: t\r\nRange: bytes=0-9\r\n\r\n");
  auto r = c.Read(/*head_only=*/true);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);  // Range is defined for GET only
  EXPECT_EQ(r->header("Content-Length"), "100000");
  EXPECT_EQ(r->header("Accept-Ranges"), "bytes");
  c.Send(Get("/file", "Range: bytes=0-9\r\n"));
  r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, Slice(0, 9));
}

TEST_F(FileTest, ReadAtPathGivesIdenticalBytes) {
  TestServer ts(FileRouter());
  Client c(ts.port());
  for (std::string range : {"", "Range: bytes=777-88888\r\n", "Range: bytes=-1\r\n"}) {
    c.Send(Get("/file", range));
    auto a = c.Read();
    c.Send(Get("/file-read-at", range));
    auto b = c.Read();
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a->status, b->status);
    EXPECT_EQ(a->body, b->body);
    EXPECT_EQ(a->header("Content-Range"), b->header("Content-Range"));
  }
}

TEST_F(FileTest, LargeFileGoesThroughSendfile) {
  Create(64u << 20);
  TestServer ts(FileRouter());
  Client c(ts.port(), 30s);
  c.Send(Get("/file"));
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  ASSERT_EQ(r->body.size(), content_.size());
  EXPECT_TRUE(r->body == content_);
  c.Send(Get("/file-read-at", "Range: bytes=1000000-40000000\r\n"));
  r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->body == Slice(1000000, 40000000));
}

TEST_F(FileTest, ZeroLengthFile) {
  Create(0);
  TestServer ts(FileRouter());
  Client c(ts.port());
  c.Send(Get("/file"));
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("Content-Length"), "0");
  c.Send(Get("/file", "Range: bytes=0-\r\n"));
  r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 416);
  EXPECT_EQ(r->header("Content-Range"), "bytes */0");
}

}  // namespace
}  // namespace hub::http
