// Fuzzes the first thing the cluster does with every datagram and stream
// message from the network: Open. The keyring and clock are fixed so seeds
// can hold authentic packets (fuzz/seeds/envelope_open_fuzz/).
//
// Input: one mode byte, then the rest.
//   mode & 1 == 0: the rest is a packet; Open it under options chosen by the
//                  mode's other bits. It never crashes; what opens has the
//                  documented size, and sealing it again round-trips.
//   mode & 1 == 1: the rest is a plaintext; Seal it, check it opens to the
//                  same bytes, then flip one bit (chosen by the mode and the
//                  length) and check it no longer opens.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "cluster/envelope.h"

namespace {

using hub::cluster::EnvelopeOptions;
using hub::cluster::Key;
using hub::cluster::Keyring;

constexpr int64_t kNow = 1'700'000'000'000;

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

const Keyring& TheRing() {
  static const Keyring* ring = [] {
    Key primary, secondary;
    for (size_t i = 0; i < primary.size(); ++i) {
      primary[i] = static_cast<uint8_t>(i);
      secondary[i] = static_cast<uint8_t>(0xff - i);
    }
    auto* r = new Keyring(primary);
    r->Install(secondary);
    return r;
  }();
  return *ring;
}

EnvelopeOptions OptionsFor(uint8_t mode) {
  EnvelopeOptions opt;
  opt.label = (mode & 2) ? "blue" : "";
  opt.version = (mode & 4) ? 2 : 1;
  opt.max_size = (mode & 8) ? 512 : 65'536;
  opt.replay_window_ms = (mode & 16) ? 0 : 120'000;
  return opt;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  const uint8_t* rest = data + 1;
  const size_t n = size - 1;
  const EnvelopeOptions opt = OptionsFor(mode);
  const Keyring& ring = TheRing();

  if ((mode & 1) == 0) {
    const auto r = hub::cluster::Open(ring, opt, kNow, rest, n);
    if (r.opened) {
      Check(n <= opt.max_size);
      Check(r.opened->version == opt.version);
      Check(r.opened->plain.size() + hub::cluster::kEnvelopeOverhead(opt.label.size()) == n);
      const auto again = hub::cluster::Seal(ring, opt, kNow, r.opened->plain.data(),
                                            r.opened->plain.size());
      const auto r2 = hub::cluster::Open(ring, opt, kNow, again.data(), again.size());
      Check(r2.opened && r2.opened->plain == r.opened->plain);
    } else if (r.failure == hub::cluster::OpenFailure::kVersion) {
      Check(r.peer_version != opt.version);
    }
    return 0;
  }

  auto sealed = hub::cluster::Seal(ring, opt, kNow, rest, n);
  const auto r = hub::cluster::Open(ring, opt, kNow, sealed.data(), sealed.size());
  if (sealed.size() > opt.max_size) {
    Check(!r.opened && r.failure == hub::cluster::OpenFailure::kTooLarge);
    return 0;
  }
  Check(r.opened && r.opened->plain.size() == n &&
        (n == 0 || std::memcmp(r.opened->plain.data(), rest, n) == 0));
  const size_t bit = (static_cast<size_t>(mode >> 1) * 131 + n) % (sealed.size() * 8);
  sealed[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
  Check(!hub::cluster::Open(ring, opt, kNow, sealed.data(), sealed.size()).opened);
  return 0;
}
