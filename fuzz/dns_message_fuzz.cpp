// Fuzzes the mDNS side of discovery: the DNS message decoder (compression
// loops, lengths past the end, oversized counts must all be clean errors) and
// the engine that consumes what it decodes. Whatever Decode accepts must
// re-encode to a message that decodes to the same records.
#include <cstddef>
#include <cstdint>
#include <span>

#include "cluster/mdns/dns.h"
#include "cluster/mdns/engine.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hub::cluster::mdns;
  std::span<const uint8_t> in(data, size);
  if (auto m = Decode(in); m.ok()) {
    if (auto again = Encode(*m, 65535); again.ok()) {
      auto m2 = Decode(*again);
      if (!m2.ok() || m2->answers.size() != m->answers.size() ||
          m2->additionals.size() != m->additionals.size())
        __builtin_trap();
      for (size_t i = 0; i < m->answers.size(); ++i)
        if (!SameRecord(m->answers[i], m2->answers[i])) __builtin_trap();
    }
  }
  // The same bytes into a responder + browser that has claimed its name
  // (claimed after 1 s of silence), as a query and as a response.
  EngineOptions o;
  o.instance = "fuzz";
  o.txt = {{"version", "1.0"}, {"node_name", "fuzz"}};
  o.addresses = {Ipv4{10, 0, 0, 1}};
  Engine e(o);
  e.Start(0);
  e.Tick(1000);
  e.Receive(1001, Endpoint{Ipv4{10, 0, 0, 2}, kPort}, in);
  e.Receive(1002, Endpoint{Ipv4{10, 0, 0, 2}, 40000}, in);
  e.Tick(200'000);
  for (const auto& d : e.TakeOutgoing())
    if (!Decode(d.bytes).ok()) __builtin_trap();
  return 0;
}
