// Fuzzes the gossip decoder and the membership state machine behind it: the
// input is a sequence of (kind, length, bytes) records fed to one Node as
// datagrams, stream requests and stream replies, with time moving on.
// Invariants: no crash or sanitizer report, whatever decodes re-encodes to
// the same messages, the node itself stays alive, its counts agree with its
// member list, and nothing it sends exceeds its datagram budget.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "cluster/swim/detail/codec.h"
#include "cluster/swim/node.h"

namespace {

using namespace hub::cluster::swim;

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

void CheckRoundTrip(const uint8_t* data, size_t size) {
  auto msgs = detail::DecodePacket(data, size);
  if (!msgs) return;
  std::vector<Bytes> parts;
  for (const detail::Message& m : *msgs) parts.push_back(detail::EncodeMessage(m));
  const Bytes again = detail::EncodeParts(parts);
  auto back = detail::DecodePacket(again.data(), again.size());
  Check(back && *back == *msgs);
}

void CheckNode(Node& node) {
  size_t alive = 0;
  bool self_alive = false;
  for (const Member& m : node.Members()) {
    if (m.state == MemberState::kAlive) ++alive;
    if (m.is_self) self_alive = m.state == MemberState::kAlive && m.name == node.options().name;
  }
  Check(self_alive);
  Check(alive == node.NumAlive());
  for (const Output& o : node.TakeOutputs()) {
    if (const auto* p = std::get_if<SendPacket>(&o)) Check(p->bytes.size() <= node.options().max_packet);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  CheckRoundTrip(data, size);

  Options o = Options::Lan();
  o.name = "self";
  o.address = "10.0.0.1:7946";
  int64_t now = 1'000;
  Node node(o, nullptr, 1, now);
  // A few members to talk about, so claims about known names reach the state machine.
  for (const char* n : {"b", "c"}) {
    const Bytes alive =
        detail::EncodePacket(detail::Alive{2, n, std::string("10.0.0.") + (n[0] == 'b' ? "2" : "3") + ":7946", "", 1});
    node.HandlePacket("10.0.0.2:7946", alive.data(), alive.size(), now);
  }
  node.Join({"10.0.0.2:7946"}, now);  // stream id 1 awaits a reply

  // Records: kind (1 byte), length (2 bytes, big-endian), bytes.
  size_t i = 0;
  while (i + 3 <= size) {
    const uint8_t kind = data[i];
    const size_t len = std::min<size_t>((size_t{data[i + 1]} << 8) | data[i + 2], size - i - 3);
    const uint8_t* p = data + i + 3;
    i += 3 + len;
    CheckRoundTrip(p, len);
    switch (kind % 4) {
      case 0:
        node.HandlePacket("10.0.0.2:7946", p, len, now);
        break;
      case 1:
        (void)node.HandleStream("10.0.0.3:50000", p, len, now);
        break;
      case 2:
        node.HandleStreamReply(1 + kind / 4 % 4, Bytes(p, p + len), now);
        break;
      case 3:
        now += 1 + (kind / 4) * 50;
        node.Tick(now);
        break;
    }
    CheckNode(node);
  }
  node.Tick(now + 60'000);
  CheckNode(node);
  return 0;
}
