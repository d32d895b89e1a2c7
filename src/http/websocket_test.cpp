#include "http/websocket.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

namespace hub::http {
namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;
using ws::Event;
using ws::Opcode;
using Kind = ws::Event::Kind;

std::string Bytes(std::initializer_list<int> bytes) {
  std::string s;
  for (int b : bytes) s += static_cast<char>(b);
  return s;
}

std::string Pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + i / 251) % 26);
  return s;
}

std::string CloseCodeOf(const Event& e) { return std::to_string(e.code); }

// ---------------------------------------------------------------------------
// Handshake helpers and encoding (RFC 6455 examples).

TEST(WebSocketCodec, AcceptKeyMatchesTheRfcExample) {
  // RFC 6455 §1.3 (the task brief had a typo in this value).
  EXPECT_EQ(ws::AcceptKey("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(WebSocketCodec, KeyMustBeBase64OfSixteenBytes) {
  EXPECT_TRUE(ws::IsValidKey("dGhlIHNhbXBsZSBub25jZQ=="));
  EXPECT_TRUE(ws::IsValidKey(" dGhlIHNhbXBsZSBub25jZQ== "));
  EXPECT_TRUE(ws::IsValidKey("AAAAAAAAAAAAAAAAAAAAAA=="));
  EXPECT_FALSE(ws::IsValidKey(""));
  EXPECT_FALSE(ws::IsValidKey("dGhlIHNhbXBsZSBub25jZQ="));  // 23 chars
  EXPECT_FALSE(ws::IsValidKey("dGhlIHNhbXBsZSBub25jZQ=x"));
  EXPECT_FALSE(ws::IsValidKey("dGhlIHNhbXBsZSBub25j*Q=="));    // not base64
  EXPECT_FALSE(ws::IsValidKey("dGhlIHNhbXBsZSBub25jZR=="));    // unused bits set
  EXPECT_FALSE(ws::IsValidKey("dGhlIHNhbXBsZSBub25jZQdGhl"));  // 19 bytes
}

TEST(WebSocketCodec, CheckHandshake) {
  auto request = [](std::string method, std::vector<std::pair<std::string, std::string>> h) {
    Request r;
    r.method_ = std::move(method);
    r.headers_ = std::move(h);
    return r;
  };
  Headers good = {{"Host", "x"},
                  {"Upgrade", "WebSocket"},
                  {"Connection", "keep-alive, Upgrade"},
                  {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
                  {"Sec-WebSocket-Version", "13"}};
  EXPECT_FALSE(ws::CheckHandshake(request("GET", good), 11));
  EXPECT_EQ(ws::CheckHandshake(request("GET", good), 10)->status, 400);
  EXPECT_EQ(ws::CheckHandshake(request("POST", good), 11)->status, 400);
  for (size_t drop = 1; drop < good.size(); ++drop) {
    Headers h = good;
    h.erase(h.begin() + static_cast<ptrdiff_t>(drop));
    auto e = ws::CheckHandshake(request("GET", h), 11);
    ASSERT_TRUE(e) << "without " << good[drop].first;
    EXPECT_EQ(e->status, good[drop].first == "Sec-WebSocket-Version" ? 426 : 400);
  }
  Headers v8 = good;
  v8[4].second = "8";
  EXPECT_EQ(ws::CheckHandshake(request("GET", v8), 11)->status, 426);
  Request with_body = request("GET", good);
  with_body.content_length_ = 5;
  EXPECT_EQ(ws::CheckHandshake(with_body, 11)->status, 400);
  Headers protocols = good;
  protocols.emplace_back("Sec-WebSocket-Protocol", "chat, superchat");
  EXPECT_EQ(ws::SelectProtocol(request("GET", protocols), "superchat"), "superchat");
  EXPECT_EQ(ws::SelectProtocol(request("GET", protocols), "super"), "");
  EXPECT_EQ(ws::SelectProtocol(request("GET", good), "chat"), "");
}

TEST(WebSocketCodec, EncodesTheRfcExamples) {
  EXPECT_EQ(ws::EncodeFrame(Opcode::text, "Hello"),
            Bytes({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}));
  EXPECT_EQ(ws::EncodeClientFrame(Opcode::text, "Hello", 0x37fa213d),
            Bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}));
  EXPECT_EQ(ws::EncodeFrame(Opcode::text, "Hel", false), Bytes({0x01, 0x03, 0x48, 0x65, 0x6c}));
  EXPECT_EQ(ws::EncodeFrame(Opcode::continuation, "lo"), Bytes({0x80, 0x02, 0x6c, 0x6f}));
  EXPECT_EQ(ws::EncodeFrame(Opcode::ping, "Hello"),
            Bytes({0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}));
  EXPECT_EQ(ws::EncodeClientFrame(Opcode::pong, "Hello", 0x37fa213d),
            Bytes({0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}));
  EXPECT_EQ(ws::EncodeFrame(Opcode::binary, std::string(256, 'x')).substr(0, 4),
            Bytes({0x82, 0x7e, 0x01, 0x00}));
  EXPECT_EQ(ws::EncodeFrame(Opcode::binary, std::string(65536, 'x')).substr(0, 10),
            Bytes({0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0}));
  // Length boundaries: 125 / 126 / 65535 / 65536.
  EXPECT_EQ(ws::EncodeFrame(Opcode::binary, std::string(125, 'x')).size(), 2u + 125);
  EXPECT_EQ(ws::EncodeFrame(Opcode::binary, std::string(126, 'x')).size(), 4u + 126);
  EXPECT_EQ(ws::EncodeFrame(Opcode::binary, std::string(65535, 'x')).size(), 4u + 65535);
  EXPECT_EQ(ws::EncodeFrame(Opcode::binary, std::string(65536, 'x')).size(), 10u + 65536);
}

TEST(WebSocketCodec, EncodeClose) {
  EXPECT_EQ(ws::EncodeClose(1000, ""), Bytes({0x88, 0x02, 0x03, 0xe8}));
  EXPECT_EQ(ws::EncodeClose(1001, "bye"), Bytes({0x88, 0x05, 0x03, 0xe9, 'b', 'y', 'e'}));
  EXPECT_EQ(ws::EncodeClose(1005, "ignored"), Bytes({0x88, 0x00}));
  EXPECT_EQ(ws::EncodeClose(0, ""), Bytes({0x88, 0x00}));
  // A long reason is cut to 123 bytes, never inside a code point.
  std::string euros;
  for (int i = 0; i < 50; ++i) euros += "\xE2\x82\xAC";  // 150 bytes
  std::string frame = ws::EncodeClose(1000, euros);
  ASSERT_LE(frame.size(), 2u + 125);
  EXPECT_EQ(frame.size(), 2u + 2 + 123);  // 41 whole euros
  EXPECT_TRUE(ws::IsValidUtf8(frame.substr(4)));
  std::string odd = "x" + euros;  // 123 would cut a euro: back off to 121
  EXPECT_EQ(ws::EncodeClose(1000, odd).size(), 2u + 2 + 121);
}

TEST(WebSocketCodec, Utf8Validation) {
  const std::vector<std::string> valid = {"",
                                          "hello",
                                          "\xC2\x80",
                                          "\xDF\xBF",
                                          "\xE0\xA0\x80",
                                          "\xED\x9F\xBF",
                                          "\xEE\x80\x80",
                                          "\xEF\xBF\xBF",
                                          "\xF0\x90\x80\x80",
                                          "\xF4\x8F\xBF\xBF",
                                          "κόσμε",
                                          "a much longer ascii run x"};
  const std::vector<std::string> invalid = {
      "\x80",
      "\xBF",
      "\xC0\x80",
      "\xC1\xBF",
      "\xC2",
      "\xE0\x80\x80",
      "\xE0\x9F\xBF",
      "\xED\xA0\x80",
      "\xED\xBF\xBF",
      "\xF0\x80\x80\x80",
      "\xF4\x90\x80\x80",
      "\xF5\x80\x80\x80",
      "\xFF",
      "\xE2\x82",
      "abcdefgh\xC3\x28",
      "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5\xED\xA0\x80"
      "edited"};
  for (const std::string& s : valid) {
    EXPECT_TRUE(ws::IsValidUtf8(s)) << s;
    // Any split gives the same answer.
    for (size_t i = 0; i <= s.size(); ++i) {
      ws::Utf8Validator v;
      EXPECT_TRUE(v.Feed(s.substr(0, i)) && v.Feed(s.substr(i)) && v.complete()) << s << " @" << i;
    }
  }
  for (const std::string& s : invalid) {
    EXPECT_FALSE(ws::IsValidUtf8(s)) << s;
    for (size_t i = 0; i <= s.size(); ++i) {
      ws::Utf8Validator v;
      EXPECT_FALSE(v.Feed(s.substr(0, i)) && v.Feed(s.substr(i)) && v.complete()) << s << " @" << i;
    }
  }
}

// ---------------------------------------------------------------------------
// Parser.

// Parses `wire` fed in pieces of `step` bytes (0: in one piece), returning
// every event (the last one the error, if any).
std::vector<Event> ParseAll(std::string_view wire, size_t step, size_t max = 1 << 20,
                            ws::FramesFrom from = ws::FramesFrom::kClient) {
  ws::Parser parser(max, from);
  std::vector<Event> events;
  auto feed = [&](std::string_view piece) {
    while (true) {
      size_t used = 0;
      Event e = parser.Parse(piece, &used);
      EXPECT_LE(used, piece.size());
      piece.remove_prefix(used);
      if (e.kind == Kind::kNeedMore) {
        EXPECT_TRUE(piece.empty());
        return true;
      }
      events.push_back(std::move(e));
      if (events.back().kind == Kind::kError) return false;
    }
  };
  if (step == 0) {
    feed(wire);
  } else {
    for (size_t i = 0; i < wire.size(); i += step) {
      if (!feed(wire.substr(i, step))) break;
    }
  }
  return events;
}

// Two events are the same message / control frame / error.
std::string Describe(const Event& e) {
  switch (e.kind) {
    case Kind::kNeedMore:
      return "more";
    case Kind::kMessage:
      return std::string(e.text ? "text:" : "binary:") + e.data;
    case Kind::kPing:
      return "ping:" + e.data;
    case Kind::kPong:
      return "pong:" + e.data;
    case Kind::kClose:
      return "close:" + CloseCodeOf(e) + ":" + e.data;
    case Kind::kError:
      return "error:" + CloseCodeOf(e);
  }
  return "?";
}
std::vector<std::string> Describe(const std::vector<Event>& events) {
  std::vector<std::string> out;
  for (const Event& e : events) out.push_back(Describe(e));
  return out;
}

uint32_t Mask(size_t i) { return 0x9e3779b9u * static_cast<uint32_t>(i + 1); }

TEST(WebSocketParser, EveryLengthEncodingRoundTrips) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{125}, size_t{126}, size_t{127}, size_t{65535},
                   size_t{65536}, size_t{70000}}) {
    std::string payload = Pattern(n);
    auto events = ParseAll(ws::EncodeClientFrame(Opcode::binary, payload, Mask(n)), 0);
    ASSERT_EQ(events.size(), 1u) << n;
    EXPECT_EQ(events[0].kind, Kind::kMessage);
    EXPECT_FALSE(events[0].text);
    EXPECT_EQ(events[0].data, payload) << n;
    // And server frames for a client-side parser.
    auto back =
        ParseAll(ws::EncodeFrame(Opcode::text, payload), 0, 1 << 20, ws::FramesFrom::kServer);
    ASSERT_EQ(back.size(), 1u);
    EXPECT_EQ(back[0].data, payload);
  }
}

TEST(WebSocketParser, EverySplitPointGivesTheSameEvents) {
  std::string wire;
  size_t m = 0;
  wire += ws::EncodeClientFrame(Opcode::text, "Hel", Mask(m++), false);
  wire += ws::EncodeClientFrame(Opcode::ping, "are you there", Mask(m++));
  wire += ws::EncodeClientFrame(Opcode::continuation, "lo, ", Mask(m++), false);
  wire += ws::EncodeClientFrame(Opcode::pong, "", Mask(m++));
  wire += ws::EncodeClientFrame(Opcode::continuation, "w\xC3\xB6rld", Mask(m++), true);
  wire += ws::EncodeClientFrame(Opcode::binary, Pattern(300), Mask(m++));
  wire += ws::EncodeClientFrame(Opcode::text, "", Mask(m++));
  wire += ws::EncodeClientFrame(Opcode::binary, "", Mask(m++), false);
  wire += ws::EncodeClientFrame(Opcode::continuation, "", Mask(m++), false);
  wire += ws::EncodeClientFrame(Opcode::continuation, "xyz", Mask(m++), true);
  // A text message split inside a code point ("€" = E2 82 AC).
  wire += ws::EncodeClientFrame(Opcode::text, "price: \xE2", Mask(m++), false);
  wire += ws::EncodeClientFrame(Opcode::continuation, "\x82\xAC", Mask(m++), true);
  wire += ws::EncodeClientFrame(Opcode::close, Bytes({0x0f, 0xa1}) + "bye", Mask(m++));
  const std::vector<std::string> expected = {
      "ping:are you there",       "pong:",         "text:Hello, w\xC3\xB6rld",
      "binary:" + Pattern(300),   "text:",         "binary:xyz",
      "text:price: \xE2\x82\xAC", "close:4001:bye"};
  EXPECT_EQ(Describe(ParseAll(wire, 0)), expected);
  EXPECT_EQ(Describe(ParseAll(wire, 1)), expected);
  for (size_t step : {2, 3, 7, 13}) EXPECT_EQ(Describe(ParseAll(wire, step)), expected) << step;
  for (size_t split = 0; split <= wire.size(); ++split) {
    ws::Parser parser(1 << 20);
    std::vector<Event> events;
    for (std::string_view piece :
         {std::string_view(wire).substr(0, split), std::string_view(wire).substr(split)}) {
      for (;;) {
        size_t used = 0;
        Event e = parser.Parse(piece, &used);
        piece.remove_prefix(used);
        if (e.kind == Kind::kNeedMore) break;
        events.push_back(std::move(e));
      }
    }
    ASSERT_EQ(Describe(events), expected) << "split at " << split;
  }
}

// The close code a stream is refused with, or 0 if it parses cleanly.
uint16_t ErrorOf(std::string_view wire, size_t max = 1 << 20) {
  auto code = [](const std::vector<Event>& events) -> uint16_t {
    return !events.empty() && events.back().kind == Kind::kError ? events.back().code : 0;
  };
  uint16_t whole = code(ParseAll(wire, 0, max));
  EXPECT_EQ(whole, code(ParseAll(wire, 1, max))) << "byte-by-byte parsing disagrees";
  return whole;
}

TEST(WebSocketParser, ProtocolErrorsAre1002) {
  EXPECT_EQ(ErrorOf(ws::EncodeFrame(Opcode::text, "unmasked")), 1002);
  EXPECT_EQ(ErrorOf(ws::EncodeClientFrame(Opcode::text, "ok", 1)), 0);
  for (int rsv : {0x40, 0x20, 0x10}) {
    std::string f = ws::EncodeClientFrame(Opcode::text, "x", 1);
    f[0] = static_cast<char>(f[0] | rsv);
    EXPECT_EQ(ErrorOf(f), 1002) << rsv;
  }
  for (int op : {3, 4, 5, 6, 7, 11, 12, 13, 14, 15}) {
    std::string f = ws::EncodeClientFrame(Opcode::text, "x", 1);
    f[0] = static_cast<char>(0x80 | op);
    EXPECT_EQ(ErrorOf(f), 1002) << op;
  }
  EXPECT_EQ(ErrorOf(ws::EncodeClientFrame(Opcode::ping, "x", 1, false)),
            1002);  // fragmented control
  EXPECT_EQ(ErrorOf(ws::EncodeClientFrame(Opcode::ping, std::string(125, 'x'), 1)), 0);
  EXPECT_EQ(ErrorOf(ws::EncodeClientFrame(Opcode::ping, std::string(126, 'x'), 1)), 1002);
  EXPECT_EQ(ErrorOf(ws::EncodeClientFrame(Opcode::pong, std::string(126, 'x'), 1)), 1002);
  EXPECT_EQ(ErrorOf(ws::EncodeClientFrame(Opcode::continuation, "x", 1)), 1002);
  EXPECT_EQ(ErrorOf(ws::EncodeClientFrame(Opcode::text, "a", 1, false) +
                    ws::EncodeClientFrame(Opcode::text, "b", 1)),
            1002);  // a new message inside a fragmented one
  EXPECT_EQ(ErrorOf(ws::EncodeClientFrame(Opcode::text, "a", 1, false) +
                    ws::EncodeClientFrame(Opcode::binary, "b", 1)),
            1002);
  // Lengths: 16-bit holding < 126, 64-bit holding <= 65535, 64-bit top bit.
  EXPECT_EQ(ErrorOf(Bytes({0x82, 0xFE, 0x00, 0x7D, 0, 0, 0, 0})), 1002);
  EXPECT_EQ(ErrorOf(Bytes({0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0, 0, 0})), 1002);
  EXPECT_EQ(ErrorOf(Bytes({0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})), 1002);
  // Masked frames are refused by a client-side parser.
  auto events =
      ParseAll(ws::EncodeClientFrame(Opcode::text, "x", 1), 0, 100, ws::FramesFrom::kServer);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].code, 1002);
}

TEST(WebSocketParser, ClosePayloads) {
  auto close = [](std::string payload) { return ws::EncodeClientFrame(Opcode::close, payload, 7); };
  auto code = [](uint16_t c) { return Bytes({c >> 8, c & 0xFF}); };
  auto events = ParseAll(close(""), 0);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, Kind::kClose);
  EXPECT_EQ(events[0].code, 1005);  // no status
  EXPECT_EQ(ErrorOf(close("x")), 1002);
  for (uint16_t ok : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000,
                      3999, 4000, 4999}) {
    EXPECT_EQ(ErrorOf(close(code(ok))), 0) << ok;
  }
  for (uint16_t bad : {0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535}) {
    EXPECT_EQ(ErrorOf(close(code(bad))), 1002) << bad;
  }
  EXPECT_EQ(ErrorOf(close(code(1000) + "fine \xE2\x82\xAC")), 0);
  EXPECT_EQ(ErrorOf(close(code(1000) + "bad \xE2\x82")), 1007);
}

TEST(WebSocketParser, TextMustBeUtf8AcrossFragments) {
  EXPECT_EQ(ErrorOf(ws::EncodeClientFrame(Opcode::text, "caf\xC3\xA9", 3)), 0);
  EXPECT_EQ(ErrorOf(ws::EncodeClientFrame(Opcode::text, "caf\xC3", 3)), 1007);
  EXPECT_EQ(ErrorOf(ws::EncodeClientFrame(Opcode::text, "\xED\xA0\x80", 3)), 1007);
  EXPECT_EQ(ErrorOf(ws::EncodeClientFrame(Opcode::binary, "\xFF\xFE", 3)), 0);  // binary: anything
  // Split between code points, and inside one: both fine.
  EXPECT_EQ(ErrorOf(ws::EncodeClientFrame(Opcode::text, "caf", 3, false) +
                    ws::EncodeClientFrame(Opcode::continuation, "\xC3\xA9", 4)),
            0);
  EXPECT_EQ(ErrorOf(ws::EncodeClientFrame(Opcode::text, "caf\xC3", 3, false) +
                    ws::EncodeClientFrame(Opcode::continuation, "\xA9", 4)),
            0);
  // The message ends inside a code point.
  EXPECT_EQ(ErrorOf(ws::EncodeClientFrame(Opcode::text, "caf", 3, false) +
                    ws::EncodeClientFrame(Opcode::continuation, "\xC3", 4)),
            1007);
  // Fails fast: the first bad byte ends it, before the rest of the frame.
  ws::Parser parser(1 << 20);
  std::string frame = ws::EncodeClientFrame(Opcode::text, "ok\xFF" + std::string(1000, 'x'), 5);
  size_t used = 0;
  Event e = parser.Parse(std::string_view(frame).substr(0, 20), &used);
  EXPECT_EQ(e.kind, Kind::kError);
  EXPECT_EQ(e.code, 1007);
}

TEST(WebSocketParser, OversizedMessageIsRefusedFromItsHeader) {
  ws::Parser parser(1000);
  // A header announcing 1001 bytes, and no payload yet.
  std::string header =
      ws::EncodeClientFrame(Opcode::binary, std::string(1001, 'x'), 9).substr(0, 8);
  size_t used = 0;
  Event e = parser.Parse(header, &used);
  EXPECT_EQ(e.kind, Kind::kError);
  EXPECT_EQ(e.code, 1009);
  EXPECT_EQ(parser.buffered(), 0u);
  EXPECT_TRUE(parser.failed());
  // Stays failed, consuming nothing.
  e = parser.Parse("more", &used);
  EXPECT_EQ(e.kind, Kind::kError);
  EXPECT_EQ(used, 0u);
  // Exactly the limit is fine; the limit counts the whole message across fragments.
  EXPECT_EQ(ErrorOf(ws::EncodeClientFrame(Opcode::binary, std::string(1000, 'x'), 9), 1000), 0);
  EXPECT_EQ(ErrorOf(ws::EncodeClientFrame(Opcode::binary, std::string(600, 'x'), 9, false) +
                        ws::EncodeClientFrame(Opcode::continuation, std::string(401, 'x'), 9),
                    1000),
            1009);
  // A 64-bit length far beyond the limit.
  EXPECT_EQ(ErrorOf(Bytes({0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4}),
                    1000),
            1009);
}

// ---------------------------------------------------------------------------
// A blocking WebSocket client on a real socket: the handshake by hand,
// masked frames from EncodeClientFrame, server frames through a client-side
// Parser.

class WsClient {
 public:
  explicit WsClient(uint16_t port, std::chrono::milliseconds read_timeout = 10s) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    int one = 1;  // frames go out at once (no Nagle delay between small sends)
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    SetReadTimeout(read_timeout);
  }
  ~WsClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  WsClient(const WsClient&) = delete;
  WsClient& operator=(const WsClient&) = delete;

  bool connected() const { return connected_; }
  void SetReadTimeout(std::chrono::milliseconds t) {
    timeval tv{};
    tv.tv_sec = t.count() / 1000;
    tv.tv_usec = (t.count() % 1000) * 1000;
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  void SetReceiveBuffer(int bytes) {
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
  }

  static std::string Request(std::string_view path, std::string_view extra = "") {
    return "GET " + std::string(path) +
           " HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
           std::string(extra) + "\r\n";
  }

  // Sends `request` and reads the response head (and a body if it has a
  // Content-Length); returns the status, 0 on failure.
  int Handshake(std::string_view request) {
    if (!Send(request)) return 0;
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return 0;
    }
    std::string head = buf_.substr(0, end + 2);
    buf_.erase(0, end + 4);
    status_ = std::atoi(head.c_str() + 9);
    headers_.clear();
    size_t pos = head.find("\r\n") + 2;
    while (pos < head.size()) {
      size_t e = head.find("\r\n", pos);
      std::string line = head.substr(pos, e - pos);
      pos = e + 2;
      size_t colon = line.find(':');
      std::string value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      std::string name = line.substr(0, colon);
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      headers_.emplace_back(name, value);
    }
    if (auto cl = header("content-length")) {
      size_t n = std::stoul(*cl);
      while (buf_.size() < n) {
        if (!Fill()) return 0;
      }
      body_ = buf_.substr(0, n);
      buf_.erase(0, n);
    }
    return status_;
  }
  int Handshake() { return Handshake(Request("/echo")); }
  std::optional<std::string> header(std::string_view lower_name) const {
    for (const auto& [k, v] : headers_) {
      if (k == lower_name) return v;
    }
    return std::nullopt;
  }
  const std::string& body() const { return body_; }

  bool Send(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  bool SendFrame(Opcode op, std::string_view payload, bool fin = true) {
    mask_ = mask_ * 1103515245u + 12345u;
    return Send(ws::EncodeClientFrame(op, payload, mask_, fin));
  }
  bool SendClose(uint16_t code, std::string_view reason = "") {
    std::string payload = Bytes({code >> 8, code & 0xFF});
    payload += reason;
    return SendFrame(Opcode::close, payload);
  }

  // The next server frame event; nullopt on EOF, reset or timeout.
  std::optional<Event> Next() {
    for (;;) {
      if (!buf_.empty()) {
        size_t used = 0;
        Event e = parser_.Parse(buf_, &used);
        buf_.erase(0, used);
        if (e.kind != Kind::kNeedMore) return e;
      }
      if (!Fill()) return std::nullopt;
    }
  }
  // The next data message, answering nothing; fails the test on anything else.
  std::optional<Event> NextMessage() {
    auto e = Next();
    if (e && e->kind != Kind::kMessage) {
      ADD_FAILURE() << "expected a message, got " << Describe(*e);
      return std::nullopt;
    }
    return e;
  }
  // Reads (and drops) until the server closes: true on EOF/reset, false on timeout.
  bool ReadToEof() {
    for (;;) {
      char tmp[65536];
      ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
      if (n == 0) return true;
      if (n < 0) return errno == ECONNRESET;
    }
  }

 private:
  bool Fill() {
    char tmp[65536];
    ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string buf_;
  int status_ = 0;
  std::vector<std::pair<std::string, std::string>> headers_;
  std::string body_;
  ws::Parser parser_{64 << 20, ws::FramesFrom::kServer};
  uint32_t mask_ = 0x12345678;
};

// ---------------------------------------------------------------------------
// A Server on 127.0.0.1:<ephemeral port>, its io_context run by two threads.

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

 private:
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_{io_.get_executor()};
  std::unique_ptr<Server> server_;
  std::vector<std::thread> threads_;
  bool stopped_ = false;
};

// What a handler saw, for the test thread.
struct Seen {
  std::mutex mu;
  std::vector<std::string> errors;  // Read() errors, in words
  std::vector<std::error_code> codes;
  std::vector<uint16_t> close_codes;
  std::promise<std::shared_ptr<WebSocket>> socket;
  std::promise<void> ended;
  bool socket_set = false;

  void Publish(const std::shared_ptr<WebSocket>& ws) {
    std::lock_guard lock(mu);
    if (!socket_set) {
      socket_set = true;
      socket.set_value(ws);
    }
  }
  void End(const Error& e, const WebSocket& ws) {
    std::lock_guard lock(mu);
    errors.push_back(e.message);
    codes.push_back(e.code);
    close_codes.push_back(ws.close_code());
  }
  std::error_code last_code() {
    std::lock_guard lock(mu);
    return codes.empty() ? std::error_code{} : codes.back();
  }
  uint16_t last_close() {
    std::lock_guard lock(mu);
    return close_codes.empty() ? 0 : close_codes.back();
  }
  size_t ended_count() {
    std::lock_guard lock(mu);
    return codes.size();
  }
};

// Echo handler: every message back, same type, until Read fails.
asio::awaitable<void> Echo(Exchange& ex, WebSocketOptions options, Seen* seen) {
  auto accepted = co_await ex.AcceptWebSocket(std::move(options));
  if (!accepted) co_return;
  std::shared_ptr<WebSocket> socket = *accepted;
  if (seen) seen->Publish(socket);
  for (;;) {
    auto m = co_await socket->Read();
    if (!m) {
      if (seen) seen->End(m.error(), *socket);
      co_return;
    }
    if (m->text) {
      socket->Post(std::move(m->data));
    } else {
      socket->PostBinary(std::move(m->data));
    }
  }
}

WebSocketOptions Options(size_t max_message = 1 << 20) {
  WebSocketOptions o;
  o.max_message_bytes = max_message;
  return o;
}

Router EchoRouter(Seen* seen, WebSocketOptions options = Options()) {
  Router router;
  Handler h = [seen, options](Exchange& ex) -> asio::awaitable<void> {
    return Echo(ex, options, seen);
  };
  router.Add("GET", "/echo", h);
  router.Add("POST", "/echo", h);
  return router;
}

bool WaitFor(const std::function<bool()>& done, std::chrono::milliseconds limit = 5s) {
  auto until = SteadyClock::now() + limit;
  while (!done()) {
    if (SteadyClock::now() > until) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

// ---------------------------------------------------------------------------
// Handshake on the wire.

TEST(WebSocketServer, HandshakeAnswers101WithTheAcceptKey) {
  WebSocketOptions options = Options();
  options.protocol = "superchat";
  TestServer ts(EchoRouter(nullptr, options));
  WsClient c(ts.port());
  ASSERT_EQ(c.Handshake(WsClient::Request("/echo", "Sec-WebSocket-Protocol: chat, superchat\r\n")),
            101);
  EXPECT_EQ(c.header("sec-websocket-accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  EXPECT_EQ(c.header("upgrade"), "websocket");
  EXPECT_EQ(c.header("connection"), "Upgrade");
  EXPECT_EQ(c.header("sec-websocket-protocol"), "superchat");
  EXPECT_FALSE(c.header("content-length"));
  ASSERT_TRUE(c.SendFrame(Opcode::text, "hi"));
  auto e = c.NextMessage();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->data, "hi");

  WsClient plain(ts.port());
  ASSERT_EQ(plain.Handshake(), 101);
  EXPECT_FALSE(plain.header("sec-websocket-protocol"));  // not offered: not answered
}

TEST(WebSocketServer, FramesSentWithTheHandshakeAreRead) {
  TestServer ts(EchoRouter(nullptr));
  WsClient c(ts.port());
  std::string both = WsClient::Request("/echo") + ws::EncodeClientFrame(Opcode::text, "early", 42);
  ASSERT_EQ(c.Handshake(both), 101);
  auto e = c.NextMessage();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->data, "early");
}

TEST(WebSocketServer, BadHandshakesAreRefused) {
  Seen seen;
  TestServer ts(EchoRouter(&seen));
  struct Case {
    std::string request;
    int status;
  };
  const std::string key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
  const std::vector<Case> cases = {
      {"GET /echo HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
       "Sec-WebSocket-Version: 13\r\n\r\n",
       400},  // no key
      {"GET /echo HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
       "Sec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n\r\n",
       400},  // key of 5 bytes
      {"GET /echo HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" + key +
           "Sec-WebSocket-Version: 8\r\n\r\n",
       426},
      {"POST /echo HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" + key +
           "Sec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n",
       400},
      {"GET /echo HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\n" + key +
           "Sec-WebSocket-Version: 13\r\n\r\n",
       400},  // no Upgrade
      {"GET /echo HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n" + key +
           "Sec-WebSocket-Version: 13\r\n\r\n",
       400},  // no Connection: Upgrade
      {"GET /echo HTTP/1.0\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" + key +
           "Sec-WebSocket-Version: 13\r\n\r\n",
       400},
  };
  for (const Case& tc : cases) {
    WsClient c(ts.port());
    EXPECT_EQ(c.Handshake(tc.request), tc.status) << tc.request;
    EXPECT_NE(c.body().find("\"error\""), std::string::npos);
    if (tc.status == 426) {
      EXPECT_EQ(c.header("sec-websocket-version"), "13");
    }
    EXPECT_EQ(c.header("connection"), "close");
    EXPECT_TRUE(c.ReadToEof());
  }
  EXPECT_EQ(seen.ended_count(), 0u);  // no WebSocket was handed out
}

asio::awaitable<bool> TryUpgrade(Exchange& ex) {
  WebSocketOptions options;  // (gcc 12: no braced temporaries inside co_await)
  auto r = co_await ex.AcceptWebSocket(std::move(options));
  co_return r.ok();
}

TEST(WebSocketServer, DefaultExchangeCannotUpgrade) {
  struct Double : Exchange {
    Request req;
    const Request& request() const override { return req; }
    asio::awaitable<Result<size_t>> ReadSome(std::span<char>) override { co_return size_t{0}; }
    asio::awaitable<Result<std::string>> ReadAll(size_t) override { co_return std::string(); }
    uint64_t body_bytes_read() const override { return 0; }
    asio::awaitable<Result<void>> Send(Response) override { co_return Ok(); }
    asio::awaitable<Result<void>> SendFile(int, Headers, int, ReadAt, uint64_t, uint64_t) override {
      co_return Ok();
    }
    asio::awaitable<Result<void>> BeginStream(int, Headers) override { co_return Ok(); }
    asio::awaitable<Result<void>> WriteStream(std::string_view) override { co_return Ok(); }
    asio::awaitable<Result<void>> EndStream() override { co_return Ok(); }
    void CloseAfterResponse() override {}
    bool stopping() const override { return false; }
  };
  asio::io_context io;
  Double d;
  auto f = asio::co_spawn(io, TryUpgrade(d), asio::use_future);
  io.run();
  EXPECT_FALSE(f.get());
}

// ---------------------------------------------------------------------------
// Messages.

TEST(WebSocketServer, EchoesTextAndBinaryOfEverySize) {
  TestServer ts(EchoRouter(nullptr, Options(2 << 20)));
  WsClient c(ts.port());
  ASSERT_EQ(c.Handshake(), 101);
  for (size_t n : {size_t{0}, size_t{1}, size_t{125}, size_t{126}, size_t{65535}, size_t{65536},
                   size_t{1} << 20}) {
    std::string payload = Pattern(n);
    for (Opcode op : {Opcode::text, Opcode::binary}) {
      ASSERT_TRUE(c.SendFrame(op, payload));
      auto e = c.NextMessage();
      ASSERT_TRUE(e) << n;
      EXPECT_EQ(e->text, op == Opcode::text);
      EXPECT_EQ(e->data.size(), n);
      EXPECT_TRUE(e->data == payload) << n;
    }
  }
}

TEST(WebSocketServer, FragmentedMessageWithInterleavedPing) {
  TestServer ts(EchoRouter(nullptr));
  WsClient c(ts.port());
  ASSERT_EQ(c.Handshake(), 101);
  ASSERT_TRUE(c.SendFrame(Opcode::text, "frag", false));
  ASSERT_TRUE(c.SendFrame(Opcode::ping, "ping-1"));
  ASSERT_TRUE(
      c.SendFrame(Opcode::continuation, "mented \xE2", false));  // split inside a code point
  ASSERT_TRUE(c.SendFrame(Opcode::continuation, "\x82\xAC", true));
  auto pong = c.Next();
  ASSERT_TRUE(pong);
  EXPECT_EQ(Describe(*pong), "pong:ping-1");  // answered before the message completed
  auto e = c.NextMessage();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->data, "fragmented \xE2\x82\xAC");
  // An unsolicited pong is ignored.
  ASSERT_TRUE(c.SendFrame(Opcode::pong, "whatever"));
  ASSERT_TRUE(c.SendFrame(Opcode::binary, "after"));
  e = c.NextMessage();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->data, "after");
}

// Sends `bad`, expects a close frame with `code` and then the end of the
// connection, and the handler's Read to fail with `error`.
void ExpectRefused(std::string_view bad, uint16_t code, errc error,
                   WebSocketOptions options = Options()) {
  Seen seen;
  TestServer ts(EchoRouter(&seen, options));
  WsClient c(ts.port());
  ASSERT_EQ(c.Handshake(), 101);
  ASSERT_TRUE(c.Send(bad));
  auto e = c.Next();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->kind, Kind::kClose);
  EXPECT_EQ(e->code, code);
  EXPECT_TRUE(c.ReadToEof());
  ASSERT_TRUE(WaitFor([&] { return seen.ended_count() == 1; }));
  EXPECT_EQ(seen.last_code(), make_error_code(error));
  EXPECT_EQ(seen.last_close(), code);
}

TEST(WebSocketServer, UnmaskedClientFrameCloses1002) {
  ExpectRefused(ws::EncodeFrame(Opcode::text, "not masked"), 1002, errc::bad_body);
}

TEST(WebSocketServer, ReservedBitsAndOpcodesClose1002) {
  std::string rsv = ws::EncodeClientFrame(Opcode::text, "x", 1);
  rsv[0] = static_cast<char>(rsv[0] | 0x40);
  ExpectRefused(rsv, 1002, errc::bad_body);
  std::string op = ws::EncodeClientFrame(Opcode::text, "x", 1);
  op[0] = static_cast<char>(0x83);
  ExpectRefused(op, 1002, errc::bad_body);
}

TEST(WebSocketServer, OversizedMessageCloses1009BeforeItsPayload) {
  // Only the header of a 2 MiB frame is sent: the answer cannot wait for the payload.
  std::string header =
      ws::EncodeClientFrame(Opcode::binary, std::string(2 << 20, 'x'), 77).substr(0, 14);
  ExpectRefused(header, 1009, errc::body_too_large);
}

TEST(WebSocketServer, InvalidUtf8Closes1007) {
  ExpectRefused(ws::EncodeClientFrame(Opcode::text, "bad \xC0\xAF", 5), 1007, errc::bad_body);
  ExpectRefused(ws::EncodeClientFrame(Opcode::text, "ends inside \xE2\x82", 5), 1007,
                errc::bad_body);
}

TEST(WebSocketServer, CloseHandshakeEchoesTheCode) {
  Seen seen;
  TestServer ts(EchoRouter(&seen));
  WsClient c(ts.port());
  ASSERT_EQ(c.Handshake(), 101);
  ASSERT_TRUE(c.SendClose(4001, "bye"));
  auto e = c.Next();
  ASSERT_TRUE(e);
  EXPECT_EQ(Describe(*e), "close:4001:");
  EXPECT_TRUE(c.ReadToEof());
  ASSERT_TRUE(WaitFor([&] { return seen.ended_count() == 1; }));
  EXPECT_EQ(seen.last_code(), make_error_code(errc::connection_closed));
  EXPECT_EQ(seen.last_close(), 4001);
  EXPECT_TRUE(WaitFor([&] { return ts.server().connections() == 0; }));
}

TEST(WebSocketServer, CloseWithoutCodeIsAnsweredWithoutCode) {
  Seen seen;
  TestServer ts(EchoRouter(&seen));
  WsClient c(ts.port());
  ASSERT_EQ(c.Handshake(), 101);
  ASSERT_TRUE(c.SendFrame(Opcode::close, ""));
  auto e = c.Next();
  ASSERT_TRUE(e);
  EXPECT_EQ(Describe(*e), "close:1005:");
  EXPECT_TRUE(c.ReadToEof());
}

TEST(WebSocketServer, PingIsAnsweredWithItsPayload) {
  TestServer ts(EchoRouter(nullptr));
  WsClient c(ts.port());
  ASSERT_EQ(c.Handshake(), 101);
  ASSERT_TRUE(c.SendFrame(Opcode::ping, std::string(125, 'p')));
  auto e = c.Next();
  ASSERT_TRUE(e);
  EXPECT_EQ(Describe(*e), "pong:" + std::string(125, 'p'));
}

TEST(WebSocketServer, HandlerReturningClosesWith1000) {
  Router router;
  router.Add("GET", "/once", [](Exchange& ex) -> asio::awaitable<void> {
    WebSocketOptions options;
    auto accepted = co_await ex.AcceptWebSocket(std::move(options));
    if (!accepted) co_return;
    std::shared_ptr<WebSocket> socket = *accepted;
    auto m = co_await socket->Read();
    if (m) socket->Post("got " + m->data);
  });
  std::mutex mu;
  std::vector<std::pair<int, uint64_t>> records;  // status, bytes out
  TestServer ts(std::move(router), {}, [&](const RequestRecord& r) {
    std::lock_guard lock(mu);
    records.emplace_back(r.status, r.bytes_out);
  });
  WsClient c(ts.port());
  ASSERT_EQ(c.Handshake(WsClient::Request("/once")), 101);
  ASSERT_TRUE(c.SendFrame(Opcode::text, "one"));
  auto e = c.NextMessage();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->data, "got one");  // what was queued goes out before the close
  e = c.Next();
  ASSERT_TRUE(e);
  EXPECT_EQ(Describe(*e), "close:1000:");
  ASSERT_TRUE(c.SendClose(1000));  // the close handshake completes at once
  auto start = SteadyClock::now();
  EXPECT_TRUE(c.ReadToEof());
  EXPECT_LT(SteadyClock::now() - start, 2s);
  ASSERT_TRUE(WaitFor([&] {
    std::lock_guard lock(mu);
    return !records.empty();
  }));
  std::lock_guard lock(mu);
  EXPECT_EQ(records[0].first, 101);
  EXPECT_GT(records[0].second, 150u);  // the 101 head and the frames
}

TEST(WebSocketServer, HandlerThrowingClosesWith1011) {
  Router router;
  router.Add("GET", "/throw", [](Exchange& ex) -> asio::awaitable<void> {
    WebSocketOptions options;
    auto accepted = co_await ex.AcceptWebSocket(std::move(options));
    if (!accepted) co_return;
    throw std::runtime_error("boom");
  });
  TestServer ts(std::move(router));
  WsClient c(ts.port());
  ASSERT_EQ(c.Handshake(WsClient::Request("/throw")), 101);
  auto e = c.Next();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->kind, Kind::kClose);
  EXPECT_EQ(e->code, 1011);
}

TEST(WebSocketServer, PostFromAnotherThreadWhileReadingKeepsOrder) {
  Seen seen;
  TestServer ts(EchoRouter(&seen));
  WsClient c(ts.port());
  ASSERT_EQ(c.Handshake(), 101);
  std::shared_ptr<WebSocket> socket = seen.socket.get_future().get();
  constexpr int kPosted = 20000;
  std::thread poster([&] {
    for (int i = 0; i < kPosted; ++i) {
      if (!socket->Post("n" + std::to_string(i))) {
        ADD_FAILURE() << "Post refused at " << i;
        return;
      }
    }
  });
  // Meanwhile the handler keeps reading (and echoing).
  for (int i = 0; i < 200; ++i) ASSERT_TRUE(c.SendFrame(Opcode::binary, "e" + std::to_string(i)));
  int next_posted = 0, next_echo = 0;
  while (next_posted < kPosted || next_echo < 200) {
    auto e = c.NextMessage();
    ASSERT_TRUE(e) << next_posted << " " << next_echo;
    if (e->text) {
      ASSERT_EQ(e->data, "n" + std::to_string(next_posted));
      ++next_posted;
    } else {
      ASSERT_EQ(e->data, "e" + std::to_string(next_echo));
      ++next_echo;
    }
  }
  poster.join();
  ASSERT_TRUE(c.SendClose(1000));
  auto e = c.Next();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->kind, Kind::kClose);
  ASSERT_TRUE(WaitFor([&] { return seen.ended_count() == 1; }));
  EXPECT_TRUE(socket->closed());
  EXPECT_FALSE(socket->Post("too late"));
}

TEST(WebSocketServer, SlowConsumerIsClosedWith1008AndMemoryStaysBounded) {
  Seen seen;
  WebSocketOptions options = Options();
  options.max_queued_bytes = 256 * 1024;
  options.close_timeout = 300ms;
  TestServer ts(EchoRouter(&seen, options));
  WsClient c(ts.port());
  c.SetReceiveBuffer(16 * 1024);
  ASSERT_EQ(c.Handshake(), 101);
  std::shared_ptr<WebSocket> socket = seen.socket.get_future().get();
  const std::string chunk(16 * 1024, 'x');
  int accepted = 0;
  bool refused = false;
  // The client never reads: the kernel buffers fill, then the queue.
  for (int i = 0; i < 100'000 && !refused; ++i) {
    if (socket->Post(chunk)) {
      ++accepted;
    } else {
      refused = true;
    }
  }
  ASSERT_TRUE(refused);
  // At most the queue limit plus what the kernel buffers took (a few MiB on loopback).
  EXPECT_LT(static_cast<size_t>(accepted) * chunk.size(), 64u << 20);
  EXPECT_TRUE(socket->closed());
  EXPECT_EQ(socket->close_code(), 1008);
  EXPECT_FALSE(socket->Post("x"));
  // The client still does not read: the connection is dropped after close_timeout.
  ASSERT_TRUE(WaitFor([&] { return seen.ended_count() == 1; }, 5s));
  EXPECT_TRUE(WaitFor([&] { return ts.server().connections() == 0; }, 5s));
  EXPECT_EQ(seen.last_close(), 1008);
}

TEST(WebSocketServer, IdlePeerIsPingedThenDropped) {
  Seen seen;
  WebSocketOptions options = Options();
  options.idle_timeout = 400ms;
  TestServer ts(EchoRouter(&seen, options));
  WsClient c(ts.port());
  ASSERT_EQ(c.Handshake(), 101);
  auto start = SteadyClock::now();
  auto ping = c.Next();  // after about half the idle timeout
  ASSERT_TRUE(ping);
  EXPECT_EQ(ping->kind, Kind::kPing);
  EXPECT_GE(SteadyClock::now() - start, 150ms);
  // Not answered: dropped at the idle timeout.
  EXPECT_TRUE(c.ReadToEof());
  EXPECT_GE(SteadyClock::now() - start, 350ms);
  EXPECT_LT(SteadyClock::now() - start, 3s);
  ASSERT_TRUE(WaitFor([&] { return seen.ended_count() == 1; }));
  EXPECT_EQ(seen.last_code(), make_error_code(errc::body_timeout));
}

TEST(WebSocketServer, PeerAnsweringPingsStaysConnected) {
  WebSocketOptions options = Options();
  options.idle_timeout = 300ms;
  TestServer ts(EchoRouter(nullptr, options));
  WsClient c(ts.port());
  ASSERT_EQ(c.Handshake(), 101);
  auto start = SteadyClock::now();
  int pings = 0;
  while (SteadyClock::now() - start < 1s) {
    auto e = c.Next();
    ASSERT_TRUE(e);
    ASSERT_EQ(e->kind, Kind::kPing);
    ++pings;
    ASSERT_TRUE(c.SendFrame(Opcode::pong, e->data));
  }
  EXPECT_GE(pings, 3);
  ASSERT_TRUE(c.SendFrame(Opcode::text, "still here"));
  auto e = c.NextMessage();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->data, "still here");
}

TEST(WebSocketServer, StopClosesOpenWebSocketsWith1001) {
  Seen seen;
  TestServer ts(EchoRouter(&seen));
  std::vector<std::unique_ptr<WsClient>> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(std::make_unique<WsClient>(ts.port()));
    ASSERT_EQ(clients.back()->Handshake(), 101);
  }
  ASSERT_TRUE(WaitFor([&] { return ts.server().connections() == 3; }));
  auto start = SteadyClock::now();
  auto stopped = ts.StopAsync();
  for (auto& c : clients) {
    auto e = c->Next();
    ASSERT_TRUE(e);
    EXPECT_EQ(Describe(*e), "close:1001:server shutting down");
    ASSERT_TRUE(c->SendClose(1001));
  }
  EXPECT_EQ(stopped.wait_for(2s), std::future_status::ready);
  EXPECT_LT(SteadyClock::now() - start, 2s);
  EXPECT_EQ(ts.server().connections(), 0u);
  for (auto& c : clients) EXPECT_TRUE(c->ReadToEof());
  EXPECT_EQ(seen.ended_count(), 3u);
}

TEST(WebSocketServer, StopDropsPeersThatDoNotAnswerTheClose) {
  WebSocketOptions options = Options();
  options.close_timeout = 200ms;
  TestServer ts(EchoRouter(nullptr, options));
  WsClient c(ts.port());
  ASSERT_EQ(c.Handshake(), 101);
  ASSERT_TRUE(WaitFor([&] { return ts.server().connections() == 1; }));
  auto start = SteadyClock::now();
  ts.Stop();  // the client never answers
  EXPECT_LT(SteadyClock::now() - start, 2s);
  EXPECT_EQ(ts.server().connections(), 0u);
  auto e = c.Next();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code, 1001);
  EXPECT_TRUE(c.ReadToEof());
}

TEST(WebSocketServer, WebSocketsCountAgainstMaxConnections) {
  ServerOptions server_options;
  server_options.max_connections = 1;
  TestServer ts(EchoRouter(nullptr), server_options);
  WsClient first(ts.port());
  ASSERT_EQ(first.Handshake(), 101);
  WsClient second(ts.port());
  EXPECT_EQ(second.Handshake(), 503);
  ASSERT_TRUE(first.SendFrame(Opcode::text, "still served"));
  auto e = first.NextMessage();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->data, "still served");
}

TEST(WebSocketServer, UpgradeRefusedWhileStopping) {
  std::promise<void> entered;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  Router router;
  router.Add("GET", "/late", [&](Exchange& ex) -> asio::awaitable<void> {
    entered.set_value();
    while (released.wait_for(0ms) != std::future_status::ready) {
      asio::steady_timer t(co_await asio::this_coro::executor, 5ms);
      co_await t.async_wait(asio::use_awaitable);
    }
    WebSocketOptions options;
    auto accepted = co_await ex.AcceptWebSocket(std::move(options));
    (void)accepted;
  });
  TestServer ts(std::move(router));
  WsClient c(ts.port());
  ASSERT_TRUE(c.Send(WsClient::Request("/late")));
  entered.get_future().wait();
  auto stopped = ts.StopAsync();
  std::this_thread::sleep_for(20ms);
  release.set_value();
  EXPECT_EQ(c.Handshake(""), 503);
  EXPECT_EQ(stopped.wait_for(5s), std::future_status::ready);
}

}  // namespace
}  // namespace hub::http
