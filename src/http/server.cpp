// The HTTP/1.1 server: accept loop, one coroutine per connection, request
// heads through detail::ParseRequestHead (Beast), bodies decoded here, file
// bodies with sendfile(2). See README.md for the design and the limits.

#include "http/server.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <unordered_set>

#include "core/clock.h"
#include "http/detail/chunked.h"
#include "http/detail/request_head.h"
#include "http/websocket.h"

namespace hub::http {
namespace {

// After sendmsg wrote `n` bytes from iov[i..]: drops what was sent, moving
// `i` past the vectors it emptied.
void AdvanceIov(iovec* iov, size_t& i, size_t n) {
  while (n > 0) {
    size_t take = std::min(n, iov[i].iov_len);
    iov[i].iov_base = static_cast<char*>(iov[i].iov_base) + take;
    iov[i].iov_len -= take;
    n -= take;
    if (iov[i].iov_len == 0) ++i;
  }
}

using tcp = asio::ip::tcp;
using SteadyClock = std::chrono::steady_clock;
using AsioError = boost::system::error_code;

// After a handler, up to this many unread body bytes are read and dropped to
// keep the connection; a longer remainder closes it instead.
constexpr uint64_t kDrainLimit = 64 * 1024;
// One sendfile(2) call moves at most this much (the socket buffer bounds it
// anyway); after this much without blocking, the coroutine yields so one fast
// reader cannot starve the other connections of its thread.
constexpr uint64_t kSendfileChunk = 16u << 20;
constexpr uint64_t kYieldEvery = 16u << 20;
// Buffer of the read_at / pread path.
constexpr size_t kReadAtBuffer = 256 * 1024;
// Lingering close: after an error answer the client may still be sending;
// read and drop for this long / this much so the kernel does not reset the
// connection (losing our answer) when we close with unread input.
constexpr std::chrono::milliseconds kLingerTime{2000};
constexpr size_t kLingerBytes = 1 << 20;
constexpr size_t kMinBuffer = 8 * 1024;

// HUB_TRY for coroutines.
#define HTTP_CO_TRY(expr)                          \
  do {                                             \
    auto http_try_r_ = (expr);                     \
    if (!http_try_r_.ok()) co_return http_try_r_.error(); \
  } while (0)

Error Err(errc e, std::string message) {
  return MakeError(make_error_code(e), std::move(message));
}
Error Misuse(std::string message) {
  return MakeError(std::make_error_code(std::errc::invalid_argument), std::move(message));
}
std::string ErrnoText(int e) { return std::system_category().message(e); }

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; };
           return lower(x) == lower(y);
         });
}

bool IContains(std::string_view haystack, std::string_view needle) {
  for (size_t i = 0; i + needle.size() <= haystack.size(); ++i) {
    if (IEquals(haystack.substr(i, needle.size()), needle)) return true;
  }
  return false;
}

bool ValidHeaderName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 32 || u >= 127 || c == ':') return false;
  }
  return true;
}

bool ValidHeaderValue(std::string_view value) {
  return value.find_first_of(std::string_view("\0\r\n", 3)) == std::string_view::npos;
}

// Date is formatted at most once a second per thread.
std::string_view HttpDateNow() {
  thread_local int64_t cached_second = -1;
  thread_local char text[40];
  thread_local size_t length = 0;
  int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  if (now != cached_second) {
    std::string s = FormatHttpDate(now);
    length = std::min(s.size(), sizeof text);
    std::memcpy(text, s.data(), length);
    cached_second = now;
  }
  return {text, length};
}

void AppendNumber(std::string& out, uint64_t v, int base = 10) {
  char digits[24];
  auto r = std::to_chars(digits, digits + sizeof digits, v, base);
  out.append(digits, r.ptr);
}

std::string_view TrimBlanks(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool WantsClose(const Headers& headers) {
  for (const auto& [k, v] : headers) {
    if (IEquals(k, "connection") && IContains(v, "close")) return true;
  }
  return false;
}

constexpr uint64_t kCorkThreshold = 256 * 1024;

class Connection;

struct ServerState {
  ServerState(asio::io_context& io_context, ServerOptions opts, Router r, Observer o)
      : io(io_context),
        options(std::move(opts)),
        router(std::move(r)),
        observer(std::move(o)),
        accept_strand(asio::make_strand(io_context)),
        acceptor(accept_strand) {
    limits.max_header_bytes = options.max_header_bytes;
    limits.max_header_count = options.max_header_count;
  }

  size_t Count() {
    std::lock_guard lock(mu);
    return connections.size();
  }
  template <class F>
  void ForEachConnection(F&& f);

  asio::io_context& io;
  const ServerOptions options;
  const Router router;
  const Observer observer;
  detail::HeadLimits limits;
  asio::strand<asio::io_context::executor_type> accept_strand;
  tcp::acceptor acceptor;  // used on accept_strand only
  std::atomic<bool> stopping{false};
  std::atomic<bool> accepting{false};
  std::atomic<uint16_t> port{0};
  std::atomic<size_t> active{0};  // connections being served (not the 503 ones)

  std::mutex mu;
  std::unordered_set<Connection*> connections;  // guarded by mu
};

enum class Framing {
  kLength,      // Content-Length
  kChunked,     // Transfer-Encoding: chunked
  kNoBody,      // 204 / 304: neither
  kUntilClose,  // a stream to an HTTP/1.0 client: the end is the close
};

enum class HeadStatus { kOk, kClosed, kTimeout, kTooLarge, kUriTooLong };

struct ReadOutcome {
  size_t n = 0;
  AsioError ec;
  bool timed_out = false;
};

class ConnectionExchange;
class WsSession;

// One accepted socket. Lives in a coroutine (Run) on its own strand; every
// member is touched on that strand only, except executor() and the
// Stop() requests, which are posted to it.
class Connection final : public std::enable_shared_from_this<Connection> {
 public:
  Connection(std::shared_ptr<ServerState> server, tcp::socket socket, bool reject)
      : server_(std::move(server)),
        executor_(socket.get_executor()),
        socket_(std::move(socket)),
        timer_(executor_),
        reject_(reject) {}

  static asio::awaitable<void> Run(std::shared_ptr<Connection> self) {
    try {
      co_await self->Serve();
    } catch (...) {
      // A broken invariant (e.g. bad_alloc): drop this connection, keep the server.
    }
    self->Finish();
  }

  ~Connection() { Unregister(); }  // if the io_context dropped Run before it began

  const asio::any_io_executor& executor() const { return executor_; }

  // From Stop(), on the strand. A WebSocket is asked to close (1001).
  void CloseIfIdle();
  void ForceClose() { CloseSocket(); }

 private:
  friend class ConnectionExchange;
  friend class WsSession;

  asio::awaitable<void> Serve();
  asio::awaitable<HeadStatus> ReadHead(bool first, std::string_view* head);
  asio::awaitable<bool> Handle(ConnectionExchange& ex, SteadyClock::time_point start);
  asio::awaitable<void> Refuse(int status, std::string_view code, std::string_view message,
                               SteadyClock::time_point start, std::string_view why);
  asio::awaitable<void> LingeringClose();
  void Finish();
  void Unregister() {
    if (!registered_) return;
    registered_ = false;
    {
      std::lock_guard lock(server_->mu);
      server_->connections.erase(this);
    }
    if (!reject_) server_->active.fetch_sub(1);
  }
  void CloseSocket() {
    closing_ = true;
    AsioError ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

  // --- deadline: one timer, re-armed lazily (see ArmDeadlineAt) ---
  void ArmDeadline(std::chrono::milliseconds d) { ArmDeadlineAt(SteadyClock::now() + d); }
  void ArmDeadlineAt(SteadyClock::time_point at) {
    deadline_ = at;
    armed_ = true;
    fired_ = false;
    // A pending wait that ends earlier re-checks deadline_ when it fires, so
    // extending a deadline (the common case) costs no timer operation.
    if (waiting_ && timer_.expiry() <= at) return;
    timer_.expires_at(at);  // a later pending wait is cancelled; its id is stale
    StartTimerWait();
  }
  bool DisarmDeadline() {
    armed_ = false;
    return fired_;
  }
  void StartTimerWait() {
    waiting_ = true;
    uint64_t id = ++wait_id_;
    timer_.async_wait([self = shared_from_this(), id](const AsioError& ec) { self->OnTimer(ec, id); });
  }
  void OnTimer(const AsioError& ec, uint64_t id) {
    if (id != wait_id_) return;
    waiting_ = false;
    if (ec || !armed_) return;
    if (SteadyClock::now() < deadline_) {
      timer_.expires_at(deadline_);
      StartTimerWait();
      return;
    }
    armed_ = false;
    fired_ = true;
    AsioError ignored;
    socket_.cancel(ignored);  // the pending read or wait completes with operation_aborted
  }

  // --- I/O on the native non-blocking socket ---
  asio::awaitable<ReadOutcome> ReadRaw(char* p, size_t n) {
    ReadOutcome out;
    out.n = co_await socket_.async_read_some(asio::buffer(p, n),
                                             asio::redirect_error(asio::use_awaitable, out.ec));
    out.timed_out = fired_;
    co_return out;
  }
  // A body read with the body progress deadline.
  asio::awaitable<Result<size_t>> ReadBody(char* p, size_t n) {
    ArmDeadline(server_->options.body_timeout);
    ReadOutcome out = co_await ReadRaw(p, n);
    DisarmDeadline();
    if (out.timed_out) co_return Err(errc::body_timeout, "no request body bytes arrived in time");
    if (out.ec == asio::error::eof || (!out.ec && out.n == 0)) {
      co_return Err(errc::connection_closed, "the client closed the connection inside the body");
    }
    if (out.ec) co_return Err(errc::connection_closed, "reading the body failed: " + out.ec.message());
    co_return out.n;
  }
  // Reads more input into buf_ (body_timeout).
  asio::awaitable<Result<void>> FillBuffer() {
    if (rd_ == wr_) {
      rd_ = wr_ = 0;
    } else if (rd_ > 0) {
      std::memmove(buf_.get(), buf_.get() + rd_, wr_ - rd_);
      wr_ -= rd_;
      rd_ = 0;
    }
    auto r = co_await ReadBody(buf_.get() + wr_, cap_ - wr_);
    if (!r) co_return r.error();
    wr_ += *r;
    co_return Ok();
  }
  size_t buffered() const { return wr_ - rd_; }
  std::string_view BufferedView() const { return {buf_.get() + rd_, wr_ - rd_}; }
  size_t TakeBuffered(char* out, size_t max) {
    size_t n = std::min(max, buffered());
    std::memcpy(out, buf_.get() + rd_, n);
    rd_ += n;
    return n;
  }
  void SkipNewlines() {
    while (rd_ < wr_ && (buf_[rd_] == '\r' || buf_[rd_] == '\n')) ++rd_;
  }

  asio::awaitable<Result<void>> WaitWritable() {
    ArmDeadline(server_->options.write_timeout);
    AsioError ec;
    co_await socket_.async_wait(tcp::socket::wait_write,
                                asio::redirect_error(asio::use_awaitable, ec));
    if (DisarmDeadline()) co_return Err(errc::write_timeout, "the client stopped reading the response");
    if (ec) co_return Err(errc::connection_closed, "the connection closed: " + ec.message());
    co_return Ok();
  }

  // TCP_CORK around a large file response: with TCP_NODELAY alone the kernel
  // sends sendfile data in partial segments (~39 KB against ~62 KB with cork,
  // measured on loopback); corking fills every segment. Uncorking flushes.
  void Cork(bool on) {
    int v = on ? 1 : 0;
    ::setsockopt(socket_.native_handle(), IPPROTO_TCP, TCP_CORK, &v, sizeof v);
  }

  // Writes every byte of iov[0..count) (which it modifies). `more`: further
  // bytes follow at once (MSG_MORE lets the kernel merge them in a segment).
  asio::awaitable<Result<void>> WriteV(iovec* iov, size_t count, bool more) {
    size_t i = 0;
    for (;;) {
      while (i < count && iov[i].iov_len == 0) ++i;
      if (i == count) co_return Ok();
      msghdr msg{};
      msg.msg_iov = iov + i;
      msg.msg_iovlen = count - i;
      ssize_t n = ::sendmsg(socket_.native_handle(), &msg, MSG_NOSIGNAL | (more ? MSG_MORE : 0));
      if (n > 0) {
        bytes_out_ += static_cast<uint64_t>(n);
        AdvanceIov(iov, i, static_cast<size_t>(n));
        continue;
      }
      int e = n < 0 ? errno : EAGAIN;
      if (e == EINTR) continue;
      if (e == EAGAIN || e == EWOULDBLOCK) {
        HTTP_CO_TRY(co_await WaitWritable());
        continue;
      }
      co_return Err(errc::connection_closed, "sending the response failed: " + ErrnoText(e));
    }
  }
  asio::awaitable<Result<void>> Write(std::string_view a, std::string_view b, bool more) {
    iovec iov[2] = {{const_cast<char*>(a.data()), a.size()}, {const_cast<char*>(b.data()), b.size()}};
    co_return co_await WriteV(iov, 2, more);
  }

  asio::awaitable<Result<void>> SendFileRange(int fd, uint64_t offset, uint64_t length,
                                              bool more_after) {
    off_t off = static_cast<off_t>(offset);
    uint64_t left = length;
    uint64_t since_yield = 0;
    while (left > 0) {
      ssize_t n = ::sendfile(socket_.native_handle(), fd, &off,
                             static_cast<size_t>(std::min(left, kSendfileChunk)));
      if (n > 0) {
        left -= static_cast<uint64_t>(n);
        bytes_out_ += static_cast<uint64_t>(n);
        since_yield += static_cast<uint64_t>(n);
        if (since_yield >= kYieldEvery && left > 0) {
          since_yield = 0;
          co_await asio::post(executor_, asio::use_awaitable);
          if (closing_) co_return Err(errc::connection_closed, "the server closed the connection");
        }
        continue;
      }
      if (n == 0) {
        co_return Err(errc::connection_closed,
                      "the file ended before the announced length (was it truncated?)");
      }
      int e = errno;
      if (e == EINTR) continue;
      if (e == EAGAIN || e == EWOULDBLOCK) {
        since_yield = 0;
        HTTP_CO_TRY(co_await WaitWritable());
        continue;
      }
      if (e == EINVAL || e == ENOSYS || e == EOPNOTSUPP) {
        // A file system without sendfile support: copy through a buffer.
        ReadAt pread_at = [fd](uint64_t at, std::span<char> buf) -> Result<size_t> {
          for (;;) {
            ssize_t k = ::pread(fd, buf.data(), buf.size(), static_cast<off_t>(at));
            if (k >= 0) return static_cast<size_t>(k);
            if (errno != EINTR) {
              return Err(errc::connection_closed, "reading the file failed: " + ErrnoText(errno));
            }
          }
        };
        co_return co_await ReadAtRange(pread_at, static_cast<uint64_t>(off), left, more_after);
      }
      co_return Err(errc::connection_closed, "sendfile failed: " + ErrnoText(e));
    }
    co_return Ok();
  }

  asio::awaitable<Result<void>> ReadAtRange(const ReadAt& read_at, uint64_t offset,
                                            uint64_t length, bool more_after) {
    if (!read_at) co_return Misuse("SendFile without an fd needs read_at");
    std::unique_ptr<char[]> buf(new char[kReadAtBuffer]);
    while (length > 0) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(length, kReadAtBuffer));
      auto got = read_at(offset, std::span<char>(buf.get(), want));
      if (!got) co_return got.error();
      if (*got == 0 || *got > want) {
        co_return Err(errc::connection_closed,
                      "the file ended before the announced length (was it truncated?)");
      }
      offset += *got;
      length -= *got;
      HTTP_CO_TRY(co_await Write(std::string_view(buf.get(), *got), {}, length > 0 || more_after));
    }
    co_return Ok();
  }

  // Appends the status line and headers to head_ (reused: no allocation once
  // warm). Content-Length, Transfer-Encoding and Connection come from us.
  void BuildHead(int status, const Headers& headers, Framing framing, uint64_t length, bool close,
                 bool http10_keep_alive) {
    head_.clear();
    head_ += "HTTP/1.1 ";
    AppendNumber(head_, static_cast<uint64_t>(status));
    head_ += ' ';
    head_ += ReasonPhrase(status);
    head_ += "\r\n";
    bool has_date = false, has_server = false;
    for (const auto& [name, value] : headers) {
      if (!ValidHeaderName(name) || !ValidHeaderValue(value)) continue;  // no response splitting
      if (IEquals(name, "content-length") || IEquals(name, "transfer-encoding") ||
          IEquals(name, "connection")) {
        continue;
      }
      if (IEquals(name, "date")) has_date = true;
      if (IEquals(name, "server")) has_server = true;
      head_ += name;
      head_ += ": ";
      head_ += value;
      head_ += "\r\n";
    }
    if (!has_date) {
      head_ += "Date: ";
      head_ += HttpDateNow();
      head_ += "\r\n";
    }
    if (!has_server) head_ += "Server: stream-hub\r\n";
    if (framing == Framing::kLength) {
      head_ += "Content-Length: ";
      AppendNumber(head_, length);
      head_ += "\r\n";
    } else if (framing == Framing::kChunked) {
      head_ += "Transfer-Encoding: chunked\r\n";
    }
    if (close) {
      head_ += "Connection: close\r\n";
    } else if (http10_keep_alive) {
      head_ += "Connection: keep-alive\r\n";
    }
    head_ += "\r\n";
  }

  void Observe(std::string_view method, std::string_view route, std::string_view path, int status,
               SteadyClock::time_point start, std::string_view error) {
    if (!server_->observer) return;
    RequestRecord record;
    record.method = method;
    record.route = route.empty() ? std::string_view("unmatched") : route;
    record.path = path;
    record.status = status;
    record.bytes_in = bytes_in_;
    record.bytes_out = bytes_out_;
    record.duration =
        std::chrono::duration_cast<std::chrono::microseconds>(SteadyClock::now() - start);
    record.error = error;
    try {
      server_->observer(record);
    } catch (...) {
      // An observer must not take the connection down.
    }
  }

  std::shared_ptr<ServerState> server_;
  const asio::any_io_executor executor_;
  tcp::socket socket_;
  asio::steady_timer timer_;
  SteadyClock::time_point deadline_{};
  uint64_t wait_id_ = 0;
  bool armed_ = false, waiting_ = false, fired_ = false;

  // Input: [rd_, wr_) is received and not yet consumed.
  std::unique_ptr<char[]> buf_;
  size_t cap_ = 0, rd_ = 0, wr_ = 0;

  std::string head_;  // response head scratch
  std::string remote_;
  detail::RequestHead request_;  // reused across requests
  const bool reject_;
  bool registered_ = true;  // in server_->connections (AcceptLoop inserts it)
  std::shared_ptr<WsSession> ws_;  // after an upgrade, until Finish
  bool idle_ = false;     // waiting for a request with nothing received
  bool closing_ = false;  // the socket is (being) closed
  uint64_t bytes_in_ = 0, bytes_out_ = 0;
};

// --- WebSocket ---------------------------------------------------------------

constexpr SteadyClock::time_point kNever = SteadyClock::time_point::max();
// Frames per gather write (two iovecs each, under IOV_MAX).
constexpr size_t kMaxBatchFrames = 256;
static_assert(2 * kMaxBatchFrames <= IOV_MAX);

// The WebSocket of an upgraded connection. Read(), the writer, the watchdog,
// End() and Detach() run on the connection's strand and own the strand
// state; Post, Close, closed and close_code may run on any thread and meet
// the strand through mu_ (the send queue) and atomics.
//
// Lifetime: the connection holds the session (ws_) until Finish; the session
// points back at the connection (conn_) until Detach. The writer coroutine
// holds both, so a write in flight never outlives its socket.
class WsSession final : public WebSocket, public std::enable_shared_from_this<WsSession> {
 public:
  WsSession(Connection& conn, WebSocketOptions options)
      : conn_(&conn),
        io_(std::make_unique<Io>(conn.executor_)),
        options_(std::move(options)),
        parser_(options_.max_message_bytes) {}

  asio::awaitable<Result<Message>> Read() override;
  bool Post(std::string text) override { return Send(ws::Opcode::text, std::move(text)); }
  bool PostBinary(std::string data) override { return Send(ws::Opcode::binary, std::move(data)); }
  void Close(uint16_t code, std::string reason) override {
    QueueLock lock(*this);
    CloseLocked(code, reason);
  }
  uint16_t close_code() const override { return close_code_.load(); }
  bool closed() const override { return closed_.load(); }

  // On the strand, after the handler returned: closes (1000, or 1011 if it
  // threw) after what is queued, waits for the writer and the client's close
  // frame (bounded by write_timeout and close_timeout), closes the socket.
  asio::awaitable<void> End(bool handler_threw);
  // On the strand, from Connection::Finish: forget the connection and drop
  // every I/O object, so that the session may outlive the io_context.
  void Detach() {
    std::lock_guard lock(mu_);
    detached_ = true;
    StopSendingLocked(ws::kCloseAbnormal);
    conn_ = nullptr;
    io_.reset();  // a pending watchdog wait completes with operation_aborted
  }
  // Why the session ended abnormally ("" if it did not), for the RequestRecord.
  const std::string& failure() const { return failure_; }

 private:
  struct Frame {
    char head[14];
    size_t head_size = 0;
    std::string payload;  // a close frame is encoded whole here (head_size 0)
    bool close = false;
  };

  bool Send(ws::Opcode op, std::string data);
  static asio::awaitable<void> RunWriter(std::shared_ptr<WsSession> self) {
    co_await self->Drain();
  }
  asio::awaitable<void> Drain();
  asio::awaitable<Result<void>> WriteAll(std::vector<iovec>& iov);
  asio::awaitable<Result<Message>> ReadMessage();
  std::optional<Result<Message>> OnEvent(ws::Event& event);

  // --- the queue (any thread, under mu_) ---
  // Holds mu_ for anything that may queue a frame; on release, starts the
  // writer if one is needed (outside the lock: the writer takes mu_ too).
  class QueueLock {
   public:
    explicit QueueLock(WsSession& session) : session_(session), lock_(session.mu_) {}
    ~QueueLock() {
      // start_writer_ is only set before Detach, so io_ is there.
      std::optional<asio::any_io_executor> executor;
      if (std::exchange(session_.start_writer_, false)) executor = session_.io_->executor;
      lock_.unlock();
      if (executor) {
        asio::co_spawn(*executor, RunWriter(session_.shared_from_this()), asio::detached);
      }
    }
    QueueLock(const QueueLock&) = delete;
    QueueLock& operator=(const QueueLock&) = delete;

   private:
    WsSession& session_;
    std::unique_lock<std::mutex> lock_;
  };
  void QueueLocked(Frame frame) {
    queued_bytes_ += frame.head_size + frame.payload.size();
    queue_.push_back(std::move(frame));
    if (!writer_running_ && !detached_) writer_running_ = start_writer_ = true;
  }
  void QueueDataLocked(ws::Opcode op, std::string payload) {
    Frame frame;
    frame.head_size = ws::EncodeHeader(op, payload.size(), true, false, 0, frame.head);
    frame.payload = std::move(payload);
    QueueLocked(std::move(frame));
  }
  // Queues a control frame (pong, ping) unless closing; the queue limit holds.
  void SendControl(ws::Opcode op, std::string payload) {
    QueueLock lock(*this);
    if (close_queued_) return;
    if (queued_bytes_ + payload.size() + 2 > options_.max_queued_bytes) return OverflowLocked();
    QueueDataLocked(op, std::move(payload));
  }
  void CloseLocked(uint16_t code, std::string_view reason) {
    if (close_queued_) return;
    close_queued_ = true;
    closed_.store(true);
    SetCloseCode(code);
    Frame frame;
    frame.payload = ws::EncodeClose(code, reason);
    frame.close = true;
    QueueLocked(std::move(frame));
  }
  // The peer reads too slowly: drop what is queued, close with 1008, and
  // give the close frame close_timeout (not write_timeout) to go out.
  void OverflowLocked() {
    DropQueueLocked();
    CloseLocked(ws::kClosePolicy, "too slow");
    asio::post(io_->executor, [self = shared_from_this()] {  // not detached: not closing before
      if (self->conn_ == nullptr) return;
      if (self->failure_.empty()) {
        self->failure_ = "websocket: the client reads too slowly (max_queued_bytes reached)";
      }
      self->ArmCloseDeadline();
    });
  }
  // Nothing more goes out (the connection is lost or being dropped).
  void StopSendingLocked(uint16_t code) {
    close_queued_ = true;
    closed_.store(true);
    SetCloseCode(code);
    DropQueueLocked();
  }
  void DropQueueLocked() {
    for (const Frame& f : queue_) queued_bytes_ -= f.head_size + f.payload.size();
    queue_.clear();
  }
  bool CloseQueued() {
    std::lock_guard lock(mu_);
    return close_queued_;
  }
  void SetCloseCode(uint16_t code) {
    uint16_t none = 0;
    close_code_.compare_exchange_strong(none, code);
  }

  // --- deadlines (strand): one timer, re-armed lazily like Connection's ---
  SteadyClock::time_point NextDeadline() const {
    SteadyClock::time_point next = std::min(write_deadline_, close_deadline_);
    if (reading_ && options_.idle_timeout.count() > 0) {
      auto idle = ping_sent_ ? options_.idle_timeout : options_.idle_timeout / 2;
      next = std::min(next, read_since_ + idle);
    }
    return next;
  }
  void ArmWatchdog() {
    SteadyClock::time_point next = NextDeadline();
    if (next == kNever || io_ == nullptr) return;
    if (watch_waiting_ && io_->watchdog.expiry() <= next) return;  // it re-checks when it fires
    io_->watchdog.expires_at(next);
    watch_waiting_ = true;
    uint64_t id = ++watch_id_;
    io_->watchdog.async_wait(
        [self = shared_from_this(), id](const AsioError& ec) { self->OnWatchdog(ec, id); });
  }
  void ArmCloseDeadline() {
    close_deadline_ = SteadyClock::now() + options_.close_timeout;
    ArmWatchdog();
  }
  void OnWatchdog(const AsioError& ec, uint64_t id) {
    if (id != watch_id_) return;
    watch_waiting_ = false;
    if (ec || conn_ == nullptr || abort_) return;
    const SteadyClock::time_point now = SteadyClock::now();
    if (write_deadline_ <= now) {
      return Abort(errc::write_timeout,
                   "websocket: the client accepted no bytes for write_timeout");
    }
    if (close_deadline_ <= now) {
      return Abort(errc::connection_closed,
                   "websocket: the client did not complete the close in time");
    }
    if (reading_ && options_.idle_timeout.count() > 0) {
      if (ping_sent_ && read_since_ + options_.idle_timeout <= now) {
        return Abort(errc::body_timeout, "websocket: no frame from the client for idle_timeout");
      }
      if (!ping_sent_ && read_since_ + options_.idle_timeout / 2 <= now) {
        ping_sent_ = true;  // a live client answers with a pong, which is activity
        SendControl(ws::Opcode::ping, {});
      }
    }
    ArmWatchdog();
  }
  // Drops the connection: pending reads and writes fail; Read returns `code`.
  void Abort(errc code, std::string message) {
    if (abort_ || conn_ == nullptr) return;
    if (failure_.empty()) failure_ = message;
    abort_ = Err(code, std::move(message));
    {
      std::lock_guard lock(mu_);
      StopSendingLocked(ws::kCloseAbnormal);
    }
    conn_->CloseSocket();
  }

  // --- strand state ---
  Connection* conn_;  // null after Detach
  // The I/O objects, released by Detach (an executor or timer must not outlive its io_context).
  struct Io {
    explicit Io(asio::any_io_executor ex)
        : executor(std::move(ex)), watchdog(executor), wake(executor, kNever) {}
    asio::any_io_executor executor;
    asio::steady_timer watchdog;
    asio::steady_timer wake;  // End waits on it; the writer and Read cancel it when they stop
  };
  void Wake() {
    if (io_) io_->wake.cancel();
  }
  std::unique_ptr<Io> io_;  // guarded by mu_ for writes; null after Detach
  const WebSocketOptions options_;
  ws::Parser parser_;
  uint64_t watch_id_ = 0;
  bool watch_waiting_ = false;
  SteadyClock::time_point write_deadline_ = kNever;  // while the writer waits for the socket
  SteadyClock::time_point close_deadline_ = kNever;  // once our close frame is out
  SteadyClock::time_point read_since_{};             // last bytes received, or the start of Read()
  bool reading_ = false, ping_sent_ = false;
  bool peer_closed_ = false;         // its close frame arrived
  bool peer_gone_ = false;           // its end of the connection (EOF, reset) arrived
  std::optional<Error> abort_;       // set when the session dropped the connection
  std::optional<Error> read_error_;  // what Read() returns from now on
  std::string failure_;

  // --- shared state ---
  std::mutex mu_;
  std::deque<Frame> queue_;      // guarded by mu_; frames not yet taken by the writer
  size_t queued_bytes_ = 0;      // guarded by mu_; queue_ + the batch being written
  bool writer_running_ = false;  // guarded by mu_
  bool start_writer_ = false;    // guarded by mu_; QueueLock starts it on release
  bool close_queued_ = false;    // guarded by mu_; nothing is queued after a close frame
  bool detached_ = false;        // guarded by mu_
  std::atomic<bool> closed_{false};
  std::atomic<uint16_t> close_code_{0};
};

bool WsSession::Send(ws::Opcode op, std::string data) {
  QueueLock lock(*this);
  if (close_queued_) return false;
  if (queued_bytes_ + data.size() + 10 > options_.max_queued_bytes) {
    OverflowLocked();
    return false;
  }
  QueueDataLocked(op, std::move(data));
  return true;
}

// The writer: drains the queue with gather writes until it is empty. At most
// one runs (writer_running_); it runs on the strand beside Read().
asio::awaitable<void> WsSession::Drain() {
  // Keeps the connection (its socket) alive while a write is in flight, even
  // if the connection ends meanwhile (then conn_ is null and we stop).
  std::shared_ptr<Connection> keep;
  if (conn_ != nullptr) keep = conn_->shared_from_this();
  std::vector<Frame> batch;
  std::vector<iovec> iov;
  for (;;) {
    size_t batch_bytes = 0;
    bool has_close = false, more = false;
    {
      std::lock_guard lock(mu_);
      if (queue_.empty() || conn_ == nullptr || abort_) {
        DropQueueLocked();
        writer_running_ = false;
        break;
      }
      while (!queue_.empty() && batch.size() < kMaxBatchFrames) {
        Frame& f = queue_.front();
        batch_bytes += f.head_size + f.payload.size();
        has_close = has_close || f.close;
        batch.push_back(std::move(f));
        queue_.pop_front();
      }
      more = !queue_.empty();
    }
    iov.clear();
    for (Frame& f : batch) {
      iov.push_back({f.head, f.head_size});
      iov.push_back({f.payload.data(), f.payload.size()});
    }
    Result<void> w = co_await WriteAll(iov);
    batch.clear();
    {
      std::lock_guard lock(mu_);
      queued_bytes_ -= batch_bytes;
    }
    if (!w) {
      Abort(errc::connection_closed, "websocket: " + w.error().message);
      continue;  // the next round sees abort_ and stops
    }
    if (has_close && !peer_closed_) ArmCloseDeadline();  // now wait for the client's close
    // Let Read() and the other connections of this thread run between batches.
    if (more) {
      asio::any_io_executor executor = co_await asio::this_coro::executor;
      co_await asio::post(executor, asio::use_awaitable);
    }
  }
  Wake();
}

asio::awaitable<Result<void>> WsSession::WriteAll(std::vector<iovec>& iov) {
  size_t i = 0;
  for (;;) {
    while (i < iov.size() && iov[i].iov_len == 0) ++i;
    if (i == iov.size()) co_return Ok();
    if (abort_) co_return *abort_;
    if (conn_ == nullptr || conn_->closing_) {
      co_return Err(errc::connection_closed, "the connection closed");
    }
    msghdr msg{};
    msg.msg_iov = iov.data() + i;
    msg.msg_iovlen = iov.size() - i;
    ssize_t n = ::sendmsg(conn_->socket_.native_handle(), &msg, MSG_NOSIGNAL);
    if (n > 0) {
      conn_->bytes_out_ += static_cast<uint64_t>(n);
      AdvanceIov(iov.data(), i, static_cast<size_t>(n));
      continue;
    }
    int e = n < 0 ? errno : EAGAIN;
    if (e == EINTR) continue;
    if (e != EAGAIN && e != EWOULDBLOCK) {
      co_return Err(errc::connection_closed, "sending failed: " + ErrnoText(e));
    }
    write_deadline_ = SteadyClock::now() + conn_->server_->options.write_timeout;
    ArmWatchdog();
    AsioError ec;
    co_await conn_->socket_.async_wait(tcp::socket::wait_write,
                                       asio::redirect_error(asio::use_awaitable, ec));
    write_deadline_ = kNever;
    if (abort_) co_return *abort_;
    if (conn_ == nullptr || ec) co_return Err(errc::connection_closed, "the connection closed");
  }
}

asio::awaitable<Result<WebSocket::Message>> WsSession::Read() {
  if (read_error_) co_return *read_error_;
  if (conn_ == nullptr || peer_gone_) {
    co_return Err(errc::connection_closed, "the WebSocket has ended");
  }
  if (reading_) co_return Misuse("WebSocket::Read is already in progress");
  reading_ = true;
  read_since_ = SteadyClock::now();
  ping_sent_ = false;
  ArmWatchdog();
  Result<Message> r = co_await ReadMessage();
  reading_ = false;
  if (!r) read_error_ = r.error();
  Wake();
  co_return r;
}

asio::awaitable<Result<WebSocket::Message>> WsSession::ReadMessage() {
  // conn_ stays set during a read: Detach runs after the connection's coroutine.
  Connection& c = *conn_;
  for (;;) {
    while (c.rd_ < c.wr_) {
      size_t used = 0;
      ws::Event event = parser_.Parse(c.BufferedView(), &used);
      c.rd_ += used;
      c.bytes_in_ += used;
      if (event.kind == ws::Event::Kind::kNeedMore) break;
      if (std::optional<Result<Message>> done = OnEvent(event)) co_return std::move(*done);
    }
    c.rd_ = c.wr_ = 0;  // the parser holds what it needs
    if (abort_) co_return *abort_;
    AsioError ec;
    size_t n = co_await c.socket_.async_read_some(asio::buffer(c.buf_.get(), c.cap_),
                                                  asio::redirect_error(asio::use_awaitable, ec));
    if (abort_) co_return *abort_;
    if (ec || n == 0) {
      // Never read again: after EOF Asio may wait for an edge that never comes.
      peer_gone_ = true;
      {
        std::lock_guard lock(mu_);
        StopSendingLocked(ws::kCloseAbnormal);
      }
      co_return Err(errc::connection_closed,
                    "the WebSocket connection ended without a close frame from the client");
    }
    c.wr_ = n;
    read_since_ = SteadyClock::now();
    ping_sent_ = false;
  }
}

std::optional<Result<WebSocket::Message>> WsSession::OnEvent(ws::Event& event) {
  using Kind = ws::Event::Kind;
  switch (event.kind) {
    case Kind::kNeedMore:
    case Kind::kPong:
      return std::nullopt;
    case Kind::kMessage: {
      if (CloseQueued()) return std::nullopt;  // we are closing: data is dropped
      Message m;
      m.text = event.text;
      m.data = std::move(event.data);
      return Result<Message>(std::move(m));
    }
    case Kind::kPing:
      SendControl(ws::Opcode::pong, std::move(event.data));
      return std::nullopt;
    case Kind::kClose: {
      peer_closed_ = true;
      close_deadline_ = kNever;
      {
        QueueLock lock(*this);
        CloseLocked(event.code, {});  // the echo, unless we closed first
        SetCloseCode(event.code);
      }
      std::string what = "the client closed the WebSocket (" + std::to_string(event.code);
      if (!event.data.empty()) what += ": " + event.data;
      return Result<Message>(Err(errc::connection_closed, what + ")"));
    }
    case Kind::kError: {
      if (failure_.empty()) failure_ = "websocket: " + event.error;
      Close(event.code, event.error);
      errc code = event.code == ws::kCloseTooBig ? errc::body_too_large : errc::bad_body;
      return Result<Message>(Err(code, "the client broke the WebSocket protocol: " + event.error));
    }
  }
  return std::nullopt;
}

asio::awaitable<void> WsSession::End(bool handler_threw) {
  if (conn_ == nullptr) co_return;
  if (handler_threw) {
    if (failure_.empty()) failure_ = "websocket: the handler threw";
    Close(ws::kCloseInternalError, "internal error");
  } else {
    Close(ws::kCloseNormal, {});
  }
  // What is queued and the close frame go out (the writer is bounded by
  // write_timeout); a Read() left running elsewhere is not waited for.
  AsioError ec;
  for (;;) {
    bool writing;
    {
      std::lock_guard lock(mu_);
      writing = writer_running_;
    }
    if (!writing) break;
    co_await io_->wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  Connection& c = *conn_;
  if (!abort_ && !c.closing_ && !peer_closed_ && !peer_gone_ && !reading_) {
    // The close handshake: wait for the client's close frame (data is
    // dropped) or its end, within close_timeout, so that closing does not
    // reset the connection under our close frame.
    if (close_deadline_ == kNever) ArmCloseDeadline();
    if (parser_.failed()) {
      // We must not parse further: half-close and drop input until EOF.
      c.socket_.shutdown(tcp::socket::shutdown_send, ec);
      for (;;) {
        size_t n = co_await c.socket_.async_read_some(
            asio::buffer(c.buf_.get(), c.cap_), asio::redirect_error(asio::use_awaitable, ec));
        if (ec || n == 0 || abort_) break;
      }
    } else {
      (void)co_await ReadMessage();
    }
  }
  io_->watchdog.cancel();
  if (!c.closing_) c.CloseSocket();
}

void Connection::CloseIfIdle() {
  if (idle_) {
    CloseSocket();
  } else if (ws_) {
    ws_->Close(ws::kCloseGoingAway, "server shutting down");
  }
}

class ConnectionExchange final : public Exchange {
 public:
  ConnectionExchange(Connection& conn, detail::RequestHead& head)
      : conn_(conn), head_(head), is_head_(head.request.method_ == "HEAD") {
    const Request& req = head.request;
    if (req.chunked_) {
      kind_ = Body::kChunked;
    } else if (req.content_length_ && *req.content_length_ > 0) {
      kind_ = Body::kLength;
      remaining_ = *req.content_length_;
    } else {
      body_done_ = true;
    }
  }

  const Request& request() const override { return head_.request; }

  asio::awaitable<Result<size_t>> ReadSome(std::span<char> buf) override {
    if (body_done_) co_return size_t{0};
    if (buf.empty()) co_return Misuse("ReadSome needs a non-empty buffer");
    if (broken_) co_return Err(errc::connection_closed, "the connection is broken");
    if (head_.expect_continue && !continue_sent_ && !started_) {
      continue_sent_ = true;
      auto w = co_await conn_.Write("HTTP/1.1 100 Continue\r\n\r\n", {}, false);
      if (!w) co_return Broken(w.error());
    }
    if (kind_ == Body::kLength) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(remaining_, buf.size()));
      size_t n = conn_.TakeBuffered(buf.data(), want);
      if (n == 0) {
        auto r = co_await conn_.ReadBody(buf.data(), want);
        if (!r) co_return Broken(r.error());
        n = *r;
      }
      remaining_ -= n;
      body_read_ += n;
      conn_.bytes_in_ += n;
      if (remaining_ == 0) body_done_ = true;
      co_return n;
    }
    for (;;) {  // chunked
      if (conn_.buffered() > 0) {
        auto step = chunked_.Decode(conn_.BufferedView(), buf);
        conn_.rd_ += step.consumed;
        conn_.bytes_in_ += step.consumed;
        if (chunked_.failed()) co_return Broken(Err(errc::bad_body, "malformed chunked request body"));
        body_read_ += step.produced;
        if (chunked_.done()) body_done_ = true;
        if (step.produced > 0 || body_done_) co_return step.produced;
      }
      if (uint64_t direct = chunked_.data_remaining(); direct > 0) {
        // Inside chunk data with nothing buffered: read into the caller's buffer.
        size_t want = static_cast<size_t>(std::min<uint64_t>(direct, buf.size()));
        auto r = co_await conn_.ReadBody(buf.data(), want);
        if (!r) co_return Broken(r.error());
        chunked_.ConsumeData(*r);
        body_read_ += *r;
        conn_.bytes_in_ += *r;
        co_return *r;
      }
      auto f = co_await conn_.FillBuffer();
      if (!f) co_return Broken(f.error());
    }
  }

  asio::awaitable<Result<std::string>> ReadAll(size_t max_bytes) override {
    const auto& declared = head_.request.content_length_;
    if (declared && *declared > max_bytes) {
      co_return Err(errc::body_too_large, "the request body is larger than " +
                                              std::to_string(max_bytes) + " bytes");
    }
    std::string body;
    if (declared) body.reserve(static_cast<size_t>(*declared));
    while (!body_done_) {
      size_t piece = kind_ == Body::kLength
                         ? static_cast<size_t>(remaining_)
                         : std::min<size_t>(max_bytes - body.size() + 1, 64 * 1024);
      size_t old = body.size();
      body.resize(old + piece);
      auto r = co_await ReadSome(std::span<char>(body.data() + old, piece));
      if (!r) co_return r.error();
      body.resize(old + *r);
      if (body.size() > max_bytes) {
        co_return Err(errc::body_too_large, "the request body is larger than " +
                                                std::to_string(max_bytes) + " bytes");
      }
    }
    co_return body;
  }

  uint64_t body_bytes_read() const override { return body_read_; }

  asio::awaitable<Result<void>> Send(Response response) override {
    if (started_) co_return Misuse("a response was already sent");
    if (response.status < 200 || response.status > 599) {
      error_ = "handler sent an invalid status";
      response = JsonError(500, "internal", "The server produced an invalid response.");
    }
    started_ = true;
    status_ = response.status;
    const bool no_body = response.status == 204 || response.status == 304;
    Framing framing = no_body ? Framing::kNoBody : Framing::kLength;
    const bool close = DecideClose(response.headers, framing);
    conn_.BuildHead(response.status, response.headers, framing, response.body.size(), close,
                    Http10KeepAlive());
    std::string_view body = (is_head_ || no_body) ? std::string_view{} : response.body;
    auto w = co_await conn_.Write(conn_.head_, body, false);
    finished_ = true;
    if (!w) co_return Broken(w.error());
    co_return Ok();
  }

  asio::awaitable<Result<void>> SendFile(int status, Headers headers, int fd, ReadAt read_at,
                                         uint64_t offset, uint64_t length) override {
    FilePart part{{}, offset, length};
    co_return co_await SendFileParts(status, std::move(headers), fd, std::move(read_at),
                                     std::span<const FilePart>(&part, 1), {});
  }

  asio::awaitable<Result<void>> SendFileParts(int status, Headers headers, int fd, ReadAt read_at,
                                              std::span<const FilePart> parts,
                                              std::string_view suffix) override {
    if (started_) co_return Misuse("a response was already sent");
    started_ = true;
    status_ = status;
    uint64_t total = suffix.size();
    for (const FilePart& p : parts) total += p.prefix.size() + p.length;
    const bool close = DecideClose(headers, Framing::kLength);
    conn_.BuildHead(status, headers, Framing::kLength, total, close, Http10KeepAlive());
    auto r = co_await SendParts(fd, read_at, parts, suffix);
    finished_ = true;
    if (!r) co_return Broken(r.error());
    co_return Ok();
  }

  asio::awaitable<Result<void>> BeginStream(int status, Headers headers) override {
    if (started_) co_return Misuse("a response was already sent");
    started_ = true;
    streaming_ = true;
    status_ = status;
    Framing framing = head_.version == 10 ? Framing::kUntilClose : Framing::kChunked;
    conn_.BuildHead(status, headers, framing, 0, DecideClose(headers, framing), false);
    auto w = co_await conn_.Write(conn_.head_, {}, false);  // now: the client waits for events
    if (!w) co_return Broken(w.error());
    co_return Ok();
  }

  asio::awaitable<Result<void>> WriteStream(std::string_view piece) override {
    if (!streaming_ || stream_ended_) co_return Misuse("WriteStream outside BeginStream/EndStream");
    if (broken_) co_return Err(errc::connection_closed, "the connection is broken");
    if (is_head_ || piece.empty()) co_return Ok();  // an empty chunk would end the body
    Result<void> w;
    if (head_.version == 10) {
      w = co_await conn_.Write(piece, {}, false);
    } else {
      char size_line[24];
      auto end = std::to_chars(size_line, size_line + 20, piece.size(), 16).ptr;
      *end++ = '\r';
      *end++ = '\n';
      iovec iov[3] = {{size_line, static_cast<size_t>(end - size_line)},
                      {const_cast<char*>(piece.data()), piece.size()},
                      {const_cast<char*>("\r\n"), 2}};
      w = co_await conn_.WriteV(iov, 3, false);
    }
    if (!w) co_return Broken(w.error());
    co_return Ok();
  }

  asio::awaitable<Result<void>> EndStream() override {
    if (!streaming_ || stream_ended_) co_return Misuse("EndStream outside BeginStream");
    stream_ended_ = true;
    finished_ = true;
    if (broken_) co_return Err(errc::connection_closed, "the connection is broken");
    if (is_head_ || head_.version == 10) co_return Ok();
    auto w = co_await conn_.Write("0\r\n\r\n", {}, false);
    if (!w) co_return Broken(w.error());
    co_return Ok();
  }

  asio::awaitable<Result<std::shared_ptr<WebSocket>>> AcceptWebSocket(
      WebSocketOptions options) override {
    if (started_) co_return Misuse("a response was already sent");
    const Request& req = head_.request;
    std::optional<ws::HandshakeError> refused = ws::CheckHandshake(req, head_.version);
    if (!refused && conn_.server_->stopping.load()) {
      refused.emplace();
      refused->status = 503;
      refused->code = "shutting_down";
      refused->message = "The server is shutting down; reconnect in a moment.";
    }
    if (refused) {
      Response r = JsonError(refused->status, refused->code, refused->message);
      if (refused->status == 426) r.headers.emplace_back("Sec-WebSocket-Version", "13");
      if (refused->status == 503) r.headers.emplace_back("Retry-After", "1");
      close_after_ = true;  // the client may have sent frames after its head
      SetError("websocket handshake refused: " + refused->message);
      (void)co_await Send(std::move(r));
      co_return MakeError(std::make_error_code(std::errc::protocol_error),
                          "not a WebSocket handshake: " + refused->message);
    }
    std::string& h = conn_.head_;
    h.clear();
    h += "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
    h += "Sec-WebSocket-Accept: ";
    h += ws::AcceptKey(TrimBlanks(*req.header("sec-websocket-key")));
    h += "\r\n";
    if (std::string_view protocol = ws::SelectProtocol(req, options.protocol); !protocol.empty()) {
      h += "Sec-WebSocket-Protocol: ";
      h += protocol;
      h += "\r\n";
    }
    h += "Date: ";
    h += HttpDateNow();
    h += "\r\nServer: stream-hub\r\n\r\n";
    started_ = finished_ = true;
    status_ = 101;
    close_after_ = true;  // the connection ends with the WebSocket
    auto w = co_await conn_.Write(conn_.head_, {}, false);
    if (!w) co_return Broken(w.error());
    auto session = std::make_shared<WsSession>(conn_, std::move(options));
    conn_.ws_ = session;
    websocket_ = session;
    // Stop() may have asked this connection to close while the 101 went out.
    if (conn_.server_->stopping.load()) session->Close(ws::kCloseGoingAway, "server shutting down");
    std::shared_ptr<WebSocket> result = session;
    co_return result;
  }

  void CloseAfterResponse() override { close_after_ = true; }
  bool stopping() const override { return conn_.server_->stopping.load(); }

  // --- for Connection::Handle ---
  bool started() const { return started_; }
  bool finished() const { return finished_; }
  bool streaming() const { return streaming_ && !stream_ended_; }
  int status() const { return status_; }
  void MarkBroken() { broken_ = true; }
  void SetError(std::string e) {
    if (error_.empty()) error_ = std::move(e);
  }
  const std::string& error() const { return error_; }
  bool body_done() const { return body_done_; }
  const std::shared_ptr<WsSession>& websocket() const { return websocket_; }

  // Reads and drops what the handler left of the body, if that is cheap.
  asio::awaitable<void> DrainBody() {
    if (broken_ || body_done_) co_return;
    if (head_.expect_continue && !continue_sent_) {
      keep_alive_ = false;  // the client may or may not send the body now
      co_return;
    }
    if (kind_ == Body::kLength && remaining_ > kDrainLimit + conn_.buffered()) {
      keep_alive_ = false;
      co_return;
    }
    std::unique_ptr<char[]> scratch(new char[16 * 1024]);
    uint64_t drained = 0;
    while (!body_done_) {
      auto r = co_await ReadSome(std::span<char>(scratch.get(), 16 * 1024));
      drained += r ? *r : 0;
      if (!r || drained > kDrainLimit) {
        keep_alive_ = false;
        co_return;
      }
    }
  }

  bool KeepAlive() const {
    return keep_alive_ && !broken_ && !head_said_close_ && !close_after_ && body_done_ &&
           finished_ && !conn_.server_->stopping.load() && !conn_.closing_;
  }

 private:
  enum class Body { kNone, kLength, kChunked };

  Error Broken(Error e) {
    broken_ = true;
    SetError(e.message);
    return e;
  }

  bool Http10KeepAlive() const { return head_.version == 10 && !head_said_close_; }

  bool DecideClose(const Headers& headers, Framing framing) {
    bool close = !head_.keep_alive || close_after_ || conn_.server_->stopping.load() ||
                 conn_.closing_ || framing == Framing::kUntilClose || WantsClose(headers);
    if (!body_done_) {
      if (head_.expect_continue && !continue_sent_) close = true;
      if (kind_ == Body::kLength && remaining_ > kDrainLimit + conn_.buffered()) close = true;
    }
    head_said_close_ = close;
    return close;
  }

  asio::awaitable<Result<void>> SendParts(int fd, const ReadAt& read_at,
                                          std::span<const FilePart> parts,
                                          std::string_view suffix) {
    std::string_view pending = conn_.head_;
    // Cork only bodies larger than a few segments: on small files the two
    // extra calls cost more than fuller segments gain.
    uint64_t body = 0;
    for (const FilePart& p : parts) body += p.length;
    struct Corked {
      Connection* conn;
      ~Corked() {
        if (conn) conn->Cork(false);
      }
    } corked{!is_head_ && fd >= 0 && body > kCorkThreshold ? &conn_ : nullptr};
    if (corked.conn) conn_.Cork(true);
    if (!is_head_) {
      for (size_t i = 0; i < parts.size(); ++i) {
        const FilePart& part = parts[i];
        bool after = !suffix.empty();
        for (size_t j = i + 1; j < parts.size() && !after; ++j) {
          after = !parts[j].prefix.empty() || parts[j].length > 0;
        }
        // The head and prefix go out with MSG_MORE: the kernel sends them in
        // one segment with the start of the file data.
        HTTP_CO_TRY(co_await conn_.Write(pending, part.prefix, part.length > 0 || after));
        pending = {};
        if (part.length == 0) continue;
        if (fd >= 0) {
          HTTP_CO_TRY(co_await conn_.SendFileRange(fd, part.offset, part.length, after));
        } else {
          HTTP_CO_TRY(co_await conn_.ReadAtRange(read_at, part.offset, part.length, after));
        }
      }
    } else {
      suffix = {};
    }
    co_return co_await conn_.Write(pending, suffix, false);
  }

  Connection& conn_;
  detail::RequestHead& head_;
  const bool is_head_;
  Body kind_ = Body::kNone;
  uint64_t remaining_ = 0;  // Content-Length bytes not yet read
  detail::ChunkedDecoder chunked_;
  uint64_t body_read_ = 0;
  bool body_done_ = false;
  bool continue_sent_ = false;
  bool started_ = false, finished_ = false, broken_ = false;
  bool streaming_ = false, stream_ended_ = false;
  bool close_after_ = false, head_said_close_ = false, keep_alive_ = true;
  int status_ = 0;
  std::string error_;
  std::shared_ptr<WsSession> websocket_;  // after a successful upgrade
};

template <class F>
void ServerState::ForEachConnection(F&& f) {
  std::lock_guard lock(mu);
  for (Connection* c : connections) {
    if (auto shared = c->weak_from_this().lock()) f(std::move(shared));
  }
}

asio::awaitable<void> Connection::Serve() {
  AsioError ec;
  socket_.set_option(tcp::no_delay(true), ec);
  socket_.native_non_blocking(true, ec);
  if (ec) co_return;
  auto endpoint = socket_.remote_endpoint(ec);
  if (!ec) remote_ = endpoint.address().to_string();
  cap_ = std::max(kMinBuffer, server_->options.max_header_bytes + 4096);
  buf_.reset(new char[cap_]);

  if (reject_) {
    SteadyClock::time_point start = SteadyClock::now();
    Response r = JsonError(503, "too_many_connections",
                           "The server is at its connection limit; retry in a moment.");
    r.headers.emplace_back("Retry-After", "1");
    BuildHead(503, r.headers, Framing::kLength, r.body.size(), true, false);
    (void)co_await Write(head_, r.body, false);
    Observe({}, {}, {}, 503, start, "connection limit reached");
    co_await LingeringClose();
    co_return;
  }

  for (bool first = true;; first = false) {
    bytes_in_ = bytes_out_ = 0;
    std::string_view head;
    HeadStatus status = co_await ReadHead(first, &head);
    SteadyClock::time_point start = SteadyClock::now();
    switch (status) {
      case HeadStatus::kOk:
        break;
      case HeadStatus::kClosed:
        co_return;
      case HeadStatus::kTimeout:
        co_await Refuse(408, "request_timeout",
                        "The request head did not arrive in time; send it at once.", start,
                        "header_timeout");
        co_return;
      case HeadStatus::kTooLarge:
        co_await Refuse(431, "header_too_large",
                        "The request head is too large; send fewer or shorter headers.", start,
                        "header_too_large");
        co_return;
      case HeadStatus::kUriTooLong:
        co_await Refuse(414, "uri_too_long", "The request line is too long; shorten the URL.",
                        start, "uri_too_long");
        co_return;
    }
    bytes_in_ = head.size();
    if (auto err = detail::ParseRequestHead(head, server_->limits, &request_)) {
      co_await Refuse(err->status, err->code, err->message, start, err->code);
      co_return;
    }
    request_.request.remote_.assign(remote_);
    ConnectionExchange ex(*this, request_);
    bool keep_alive = co_await Handle(ex, start);
    if (!keep_alive || closing_) {
      if (!closing_) {
        if (!ex.body_done() || buffered() > 0) {
          co_await LingeringClose();
        } else {
          AsioError ignored;
          socket_.shutdown(tcp::socket::shutdown_send, ignored);
        }
      }
      co_return;
    }
  }
}

asio::awaitable<HeadStatus> Connection::ReadHead(bool first, std::string_view* head) {
  const ServerOptions& opt = server_->options;
  SkipNewlines();
  bool got = rd_ < wr_;
  if (closing_ || (server_->stopping.load() && !got)) co_return HeadStatus::kClosed;
  idle_ = !got;
  // The first request's head must arrive within header_timeout of the accept;
  // on a kept-alive connection, idle_timeout until its first byte.
  ArmDeadline((first || got) ? opt.header_timeout : opt.idle_timeout);
  size_t searched = 0;  // bytes after rd_ already searched for the blank line
  bool start_head_deadline = false;
  for (;;) {
    std::string_view data = BufferedView();
    size_t end = detail::FindHeadEnd(data, opt.max_header_bytes, searched);
    if (end != std::string_view::npos) {
      *head = data.substr(0, end);
      rd_ += end;
      DisarmDeadline();
      co_return HeadStatus::kOk;
    }
    searched = data.size();
    if (start_head_deadline) {
      // Only a head that did not arrive whole needs its own deadline; the
      // common case (the whole head in one segment) costs no timer update.
      ArmDeadline(opt.header_timeout);
      start_head_deadline = false;
    }
    if (data.size() >= opt.max_header_bytes) {
      DisarmDeadline();
      bool line_ended = data.substr(0, opt.max_header_bytes).find("\r\n") != std::string_view::npos;
      co_return line_ended ? HeadStatus::kTooLarge : HeadStatus::kUriTooLong;
    }
    if (rd_ > 0) {
      std::memmove(buf_.get(), buf_.get() + rd_, wr_ - rd_);
      wr_ -= rd_;
      rd_ = 0;
    }
    ReadOutcome out = co_await ReadRaw(buf_.get() + wr_, cap_ - wr_);
    if (out.timed_out) {
      idle_ = false;
      co_return got ? HeadStatus::kTimeout : HeadStatus::kClosed;
    }
    if (out.ec || out.n == 0 || closing_) {
      DisarmDeadline();
      idle_ = false;
      co_return HeadStatus::kClosed;  // the client left (mid-head or not): nobody to answer
    }
    wr_ += out.n;
    if (!got) {
      SkipNewlines();
      if (rd_ < wr_) {
        got = true;
        idle_ = false;
        start_head_deadline = !first;
      }
    }
  }
}

asio::awaitable<bool> Connection::Handle(ConnectionExchange& ex, SteadyClock::time_point start) {
  Request& req = ex.mutable_request();
  int status = 404;
  std::string allow;
  const Handler* handler = server_->router.Match(req, &status, &allow);
  if (handler == nullptr) {
    Response r = status == 405
                     ? JsonError(405, "method_not_allowed",
                                 "This path does not support " + req.method_ + "; see Allow.")
                     : JsonError(404, "not_found", "Nothing here; check the URL.");
    if (status == 405) r.headers.emplace_back("Allow", std::move(allow));
    (void)co_await ex.Send(std::move(r));
  } else {
    bool threw = false;
    try {
      co_await (*handler)(ex);
    } catch (const std::exception& e) {
      threw = true;
      ex.SetError(std::string("handler threw: ") + e.what());
    } catch (...) {
      threw = true;
      ex.SetError("handler threw a non-std::exception");
    }
    if (!ex.started()) {
      if (!threw) ex.SetError("handler sent no response");
      (void)co_await ex.Send(JsonError(
          500, "internal",
          "The server failed to answer this request; try again, and report it if it persists."));
    } else if (ex.streaming()) {
      (void)co_await ex.EndStream();
    }
    if (threw && !ex.finished()) ex.MarkBroken();  // the response is cut short: close
    if (std::shared_ptr<WsSession> ws = ex.websocket()) {
      co_await ws->End(threw);
      if (!ws->failure().empty()) ex.SetError(ws->failure());
    }
  }
  co_await ex.DrainBody();
  Observe(req.method_, req.route_, req.path_, ex.status(), start, ex.error());
  co_return ex.KeepAlive();
}

asio::awaitable<void> Connection::Refuse(int status, std::string_view code,
                                         std::string_view message, SteadyClock::time_point start,
                                         std::string_view why) {
  Response r = JsonError(status, code, message);
  BuildHead(status, r.headers, Framing::kLength, r.body.size(), true, false);
  auto w = co_await Write(head_, r.body, false);
  Observe({}, {}, {}, status, start, w ? why : std::string_view("write failed"));
  if (w) co_await LingeringClose();
}

asio::awaitable<void> Connection::LingeringClose() {
  AsioError ec;
  socket_.shutdown(tcp::socket::shutdown_send, ec);
  if (ec || closing_) co_return;
  if (server_->stopping.load()) co_return;
  idle_ = true;  // Stop() closes lingering connections at once
  ArmDeadline(kLingerTime);
  size_t total = 0;
  while (total < kLingerBytes && !closing_) {
    rd_ = wr_ = 0;
    ReadOutcome out = co_await ReadRaw(buf_.get(), cap_);
    if (out.ec || out.timed_out || out.n == 0) break;
    total += out.n;
  }
  DisarmDeadline();
}

void Connection::Finish() {
  timer_.cancel();  // releases the pending wait's reference to us
  CloseSocket();
  if (ws_) {
    ws_->Detach();
    ws_.reset();
  }
  Unregister();
}

asio::awaitable<void> AcceptLoop(std::shared_ptr<ServerState> s) {
  while (!s->stopping.load()) {
    tcp::socket socket(asio::make_strand(s->io));
    AsioError ec;
    co_await s->acceptor.async_accept(socket, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (ec == asio::error::operation_aborted || !s->acceptor.is_open() || s->stopping.load()) {
        break;
      }
      // Out of file descriptors, or a connection reset before we took it:
      // pause briefly instead of spinning on the error.
      asio::steady_timer pause(s->accept_strand, std::chrono::milliseconds(50));
      co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    if (s->stopping.load()) break;
    const bool reject = s->active.load() >= s->options.max_connections;
    auto conn = std::make_shared<Connection>(s, std::move(socket), reject);
    {
      std::lock_guard lock(s->mu);
      s->connections.insert(conn.get());
    }
    if (!reject) s->active.fetch_add(1);
    asio::any_io_executor ex = conn->executor();
    asio::co_spawn(ex, Connection::Run(std::move(conn)), asio::detached);
  }
  s->accepting.store(false);
}

}  // namespace

asio::awaitable<Result<std::shared_ptr<WebSocket>>> Exchange::AcceptWebSocket(WebSocketOptions) {
  co_return MakeError(std::make_error_code(std::errc::operation_not_supported),
                      "this Exchange cannot upgrade to a WebSocket");
}

asio::awaitable<Result<void>> Exchange::SendFileParts(int status, Headers headers, int fd,
                                                      ReadAt read_at,
                                                      std::span<const FilePart> parts,
                                                      std::string_view suffix) {
  Response r;
  r.status = status;
  r.headers = std::move(headers);
  for (const FilePart& part : parts) {
    r.body += part.prefix;
    size_t at = r.body.size();
    r.body.resize(at + static_cast<size_t>(part.length));
    uint64_t done = 0;
    while (done < part.length) {
      std::span<char> dst(r.body.data() + at + done, static_cast<size_t>(part.length - done));
      size_t n = 0;
      if (fd >= 0) {
        ssize_t k = ::pread(fd, dst.data(), dst.size(), static_cast<off_t>(part.offset + done));
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) co_return Err(errc::connection_closed, "reading the file failed");
        n = static_cast<size_t>(k);
      } else {
        if (!read_at) co_return Misuse("SendFileParts without an fd needs read_at");
        auto k = read_at(part.offset + done, dst);
        if (!k) co_return k.error();
        if (*k == 0) co_return Err(errc::connection_closed, "the file ended early");
        n = *k;
      }
      done += n;
    }
  }
  r.body += suffix;
  co_return co_await Send(std::move(r));
}

struct Server::Impl final : ServerState {
  using ServerState::ServerState;
};

Server::Server(asio::io_context& io, ServerOptions options, Router router, Observer observer)
    : impl_(std::make_shared<Impl>(io, std::move(options), std::move(router), std::move(observer))) {}

Server::~Server() {
  // The accept loop holds its own reference; closing the acceptor on its
  // strand ends it. Connections end with the io_context or Stop().
  std::shared_ptr<ServerState> s = impl_;
  s->stopping.store(true);
  asio::post(s->accept_strand, [s] {
    AsioError ignored;
    s->acceptor.close(ignored);
  });
}

Result<void> Server::Start() {
  ServerState& s = *impl_;
  const std::string where = s.options.bind + ":" + std::to_string(s.options.port);
  AsioError ec;
  auto address = asio::ip::make_address(s.options.bind, ec);
  if (ec) {
    return MakeError(ec, "cannot listen on " + where + ": '" + s.options.bind +
                             "' is not an IP address; set bind to e.g. 0.0.0.0 or 127.0.0.1");
  }
  tcp::endpoint endpoint(address, s.options.port);
  s.acceptor.open(endpoint.protocol(), ec);
  if (!ec) s.acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) s.acceptor.bind(endpoint, ec);
  if (!ec) s.acceptor.listen(4096, ec);
  if (ec) {
    AsioError ignored;
    s.acceptor.close(ignored);
    std::string hint = ec == asio::error::address_in_use
                           ? " (another process uses the port; pick another port or stop it)"
                           : "";
    return MakeError(ec, "cannot listen on " + where + ": " + ec.message() + hint);
  }
  s.port.store(s.acceptor.local_endpoint(ec).port());
  // sendfile(2) has no MSG_NOSIGNAL: a peer that resets mid-file would kill
  // the process with SIGPIPE. Ignore it unless the application set a handler.
  struct sigaction current {};
  if (::sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
    ::signal(SIGPIPE, SIG_IGN);
  }
  s.accepting.store(true);
  asio::co_spawn(s.accept_strand, AcceptLoop(impl_), asio::detached);
  return Ok();
}

uint16_t Server::port() const { return impl_->port.load(); }

size_t Server::connections() const { return impl_->Count(); }

asio::awaitable<void> Server::Stop() {
  std::shared_ptr<ServerState> s = impl_;
  s->stopping.store(true);
  asio::post(s->accept_strand, [s] {
    AsioError ignored;
    s->acceptor.close(ignored);
  });
  // Idle keep-alive connections go at once; busy ones finish their exchange
  // (their response says Connection: close) within the grace period.
  s->ForEachConnection([](std::shared_ptr<Connection> c) {
    asio::any_io_executor ex = c->executor();
    asio::post(ex, [c = std::move(c)] { c->CloseIfIdle(); });
  });
  asio::steady_timer poll(co_await asio::this_coro::executor);
  const auto grace_end = SteadyClock::now() + s->options.shutdown_grace;
  AsioError ec;
  while ((s->Count() > 0 || s->accepting.load()) && SteadyClock::now() < grace_end) {
    poll.expires_after(std::chrono::milliseconds(5));
    co_await poll.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  // Then every connection is closed; each coroutine sees its socket fail and ends.
  for (int round = 0; s->Count() > 0 || s->accepting.load(); ++round) {
    if (round % 20 == 0) {
      s->ForEachConnection([](std::shared_ptr<Connection> c) {
        asio::any_io_executor ex = c->executor();
        asio::post(ex, [c = std::move(c)] { c->ForceClose(); });
      });
    }
    poll.expires_after(std::chrono::milliseconds(5));
    co_await poll.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

}  // namespace hub::http
