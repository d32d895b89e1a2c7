// Fuzzes the WebSocket frame parser (server side: masked client frames). The
// first byte picks the piece size, the message limit and the side; the rest
// is the stream. Checks: the same events whether the stream comes whole or in
// pieces; nothing consumed beyond the input; no message over the limit; text
// messages and close reasons are UTF-8; a failed parser stays failed; every
// message re-encoded parses back to itself.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "http/websocket.h"

namespace {

using hub::http::ws::Event;
using Kind = Event::Kind;

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

std::vector<Event> ParseAll(std::string_view in, size_t step, size_t max,
                            hub::http::ws::FramesFrom from) {
  hub::http::ws::Parser parser(max, from);
  std::vector<Event> events;
  for (size_t at = 0; at < in.size(); at += step) {
    std::string_view piece = in.substr(at, step);
    for (;;) {
      size_t used = 0;
      Event e = parser.Parse(piece, &used);
      Check(used <= piece.size());
      Check(parser.buffered() <= max);
      piece.remove_prefix(used);
      if (e.kind == Kind::kNeedMore) {
        Check(piece.empty());
        break;
      }
      if (e.kind == Kind::kError) {
        Check(parser.failed());
        Check(e.code == 1002 || e.code == 1007 || e.code == 1009);
        size_t again = 1;
        Event same = parser.Parse("x", &again);
        Check(same.kind == Kind::kError && same.code == e.code && again == 0);
        events.push_back(std::move(e));
        return events;
      }
      events.push_back(std::move(e));
    }
  }
  return events;
}

bool Same(const Event& a, const Event& b) {
  return a.kind == b.kind && a.text == b.text && a.code == b.code && a.data == b.data;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t control = data[0];
  const size_t step = (control & 0x1F) + 1;
  const size_t max = (control & 0x40) ? 64 : 4096;
  const auto from =
      (control & 0x80) ? hub::http::ws::FramesFrom::kServer : hub::http::ws::FramesFrom::kClient;
  std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);

  std::vector<Event> whole = ParseAll(in, in.size() + 1, max, from);
  std::vector<Event> pieces = ParseAll(in, step, max, from);
  Check(whole.size() == pieces.size());
  for (size_t i = 0; i < whole.size(); ++i) Check(Same(whole[i], pieces[i]));

  for (const Event& e : whole) {
    switch (e.kind) {
      case Kind::kMessage: {
        Check(e.data.size() <= max);
        if (e.text) Check(hub::http::ws::IsValidUtf8(e.data));
        // Re-encoded (as the side the parser reads), it parses back to itself.
        std::string frame =
            from == hub::http::ws::FramesFrom::kClient
                ? hub::http::ws::EncodeClientFrame(
                      e.text ? hub::http::ws::Opcode::text : hub::http::ws::Opcode::binary, e.data,
                      0xA5A5A5A5u ^ static_cast<uint32_t>(size))
                : hub::http::ws::EncodeFrame(
                      e.text ? hub::http::ws::Opcode::text : hub::http::ws::Opcode::binary, e.data);
        std::vector<Event> back = ParseAll(frame, frame.size(), max, from);
        Check(back.size() == 1 && Same(back[0], e));
        break;
      }
      case Kind::kPing:
      case Kind::kPong:
        Check(e.data.size() <= 125);
        break;
      case Kind::kClose:
        Check(e.data.size() <= 123);
        Check(hub::http::ws::IsValidUtf8(e.data));
        break;
      default:
        break;
    }
  }
  return 0;
}
