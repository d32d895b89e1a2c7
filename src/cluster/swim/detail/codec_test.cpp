#include "cluster/swim/detail/codec.h"

#include <gtest/gtest.h>

#include "cluster/swim/detail/rng.h"

namespace hub::cluster::swim::detail {
namespace {

WireEvent SampleEvent(uint64_t id) {
  return WireEvent{"node-a", 0xfeedfacecafebeefULL, id, 1000 + id, "video.ready",
                   std::string(40, static_cast<char>('a' + id % 26))};
}

std::vector<Message> Samples() {
  PushPull pp;
  pp.join = true;
  pp.members = {MemberRecord{"a", "10.0.0.1:6881", "meta", 7, MemberState::kAlive, 1},
                MemberRecord{"b", "10.0.0.2:6881", "", 0, MemberState::kSuspect, 2},
                MemberRecord{"c", "10.0.0.3:6881", std::string(300, 'm'), UINT32_MAX,
                             MemberState::kDead, 1},
                MemberRecord{"d", "10.0.0.4:6881", "", 3, MemberState::kLeft, 1}};
  pp.user_state = std::string("\0\1\2state", 8);
  pp.events = {SampleEvent(1), SampleEvent(2)};
  pp.digest = {DigestEntry{"a", 1, 99, 0xffffffffffffffffULL}, DigestEntry{"b", 2, 0, 0}};
  return {
      Ping{0, "b", "a", "10.0.0.1:6881"},
      Ping{UINT32_MAX, "", "", ""},
      PingReq{12345, "c", "10.0.0.3:6881", true, "a", "10.0.0.1:6881"},
      Ack{300},
      Nack{UINT32_MAX},
      Alive{1, "a", "10.0.0.1:6881", "http=:8080", 1},
      Alive{UINT32_MAX, std::string(255, 'n'), "[::1]:6881", std::string(512, 'x'), 255},
      Suspect{4, "b", "a"},
      Dead{5, "c", "c"},
      SampleEvent(UINT64_MAX),
      pp,
      PushPull{},
      Events{{SampleEvent(3), SampleEvent(4)}},
      Events{},
  };
}

TEST(Codec, EveryMessageRoundTrips) {
  for (const Message& m : Samples()) {
    const Bytes b = EncodePacket(m);
    auto back = DecodePacket(b.data(), b.size());
    ASSERT_TRUE(back) << "type index " << m.index();
    ASSERT_EQ(back->size(), 1u);
    EXPECT_EQ(back->front(), m) << "type index " << m.index();
  }
}

TEST(Codec, CompoundRoundTrips) {
  std::vector<Bytes> parts;
  std::vector<Message> msgs;
  for (const Message& m : Samples()) {
    if (std::holds_alternative<PushPull>(m)) continue;
    msgs.push_back(m);
    parts.push_back(EncodeMessage(m));
  }
  const Bytes b = EncodeParts(parts);
  EXPECT_EQ(b[1], static_cast<uint8_t>(Type::kCompound));
  auto back = DecodePacket(b.data(), b.size());
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, msgs);
}

TEST(Codec, EveryTruncationIsRefused) {
  std::vector<Bytes> packets;
  std::vector<Bytes> parts;
  for (const Message& m : Samples()) {
    packets.push_back(EncodePacket(m));
    parts.push_back(EncodeMessage(m));
  }
  packets.push_back(EncodeParts({parts[0], parts[3], parts[5]}));
  for (const Bytes& p : packets) {
    for (size_t n = 0; n < p.size(); ++n) {
      EXPECT_FALSE(DecodePacket(p.data(), n)) << "prefix " << n << " of " << p.size();
    }
  }
}

TEST(Codec, TrailingBytesAreRefused) {
  for (const Message& m : Samples()) {
    Bytes b = EncodePacket(m);
    b.push_back(0);
    EXPECT_FALSE(DecodePacket(b.data(), b.size()));
  }
}

TEST(Codec, RefusesWrongVersionUnknownTypeAndNestedCompound) {
  Bytes b = EncodePacket(Ack{1});
  b[0] = 2;
  EXPECT_FALSE(DecodePacket(b.data(), b.size()));
  const Bytes unknown{kWireVersion, 200, 0};
  EXPECT_FALSE(DecodePacket(unknown.data(), unknown.size()));
  const Bytes inner = EncodeParts({EncodeMessage(Ack{1}), EncodeMessage(Ack{2})});
  Bytes nested_part(inner.begin() + 1, inner.end());  // a compound message without version
  const Bytes nested = EncodeParts({nested_part, EncodeMessage(Ack{3})});
  EXPECT_FALSE(DecodePacket(nested.data(), nested.size()));
  const Bytes empty_compound{kWireVersion, static_cast<uint8_t>(Type::kCompound), 0};
  EXPECT_FALSE(DecodePacket(empty_compound.data(), empty_compound.size()));
}

TEST(Codec, RefusesOversizedFieldsAndEmptyNames) {
  auto refused = [](const Message& m) {
    const Bytes b = EncodePacket(m);
    return !DecodePacket(b.data(), b.size());
  };
  EXPECT_TRUE(refused(Alive{1, std::string(256, 'n'), "a:1", "", 1}));
  EXPECT_TRUE(refused(Alive{1, "", "a:1", "", 1}));
  EXPECT_TRUE(refused(Alive{1, "n", "", "", 1}));
  EXPECT_TRUE(refused(Suspect{1, "n", ""}));
  EXPECT_TRUE(refused(Dead{1, "", "x"}));
  EXPECT_TRUE(refused(WireEvent{"o", 1, 1, 1, std::string(65, 't'), ""}));
  EXPECT_TRUE(refused(WireEvent{"o", 1, 1, 1, "", ""}));
  EXPECT_TRUE(refused(WireEvent{"", 1, 1, 1, "t", ""}));
  EXPECT_FALSE(refused(WireEvent{"o", 1, 1, 1, std::string(64, 't'), ""}));
}

TEST(Codec, RefusesOutOfRangeIntegersAndStates) {
  // seq is 32-bit: a varint of 2^32 is refused.
  const Bytes big{kWireVersion, static_cast<uint8_t>(Type::kAck), 0x80, 0x80, 0x80, 0x80, 0x10};
  EXPECT_FALSE(DecodePacket(big.data(), big.size()));
  // An 11-byte varint.
  Bytes endless{kWireVersion, static_cast<uint8_t>(Type::kAck)};
  endless.insert(endless.end(), 10, 0xff);
  endless.push_back(0x01);
  EXPECT_FALSE(DecodePacket(endless.data(), endless.size()));
  PushPull pp;
  pp.members = {MemberRecord{"a", "a:1", "", 1, MemberState::kAlive, 1}};
  Bytes b = EncodePacket(pp);
  // Layout: version, type, join, count, name(2), addr(4), meta(1), inc(1), state...
  const size_t state_at = 2 + 1 + 1 + 2 + 4 + 1 + 1;
  ASSERT_EQ(b[state_at], 0);
  b[state_at] = 4;
  EXPECT_FALSE(DecodePacket(b.data(), b.size()));
}

TEST(Codec, HugeCountsDoNotAllocate) {
  // A push-pull claiming 2^62 members in a few bytes is refused at once.
  Bytes b{kWireVersion, static_cast<uint8_t>(Type::kPushPull), 0};
  for (int i = 0; i < 8; ++i) b.push_back(0xff);
  b.push_back(0x3f);
  EXPECT_FALSE(DecodePacket(b.data(), b.size()));
  Bytes e{kWireVersion, static_cast<uint8_t>(Type::kEvents), 0xff, 0xff, 0xff, 0xff, 0x0f};
  EXPECT_FALSE(DecodePacket(e.data(), e.size()));
}

TEST(Codec, RandomGarbageNeverCrashesAndWhatDecodesIsStable) {
  Rng rng(42);
  size_t decoded = 0;
  std::vector<Bytes> valid;
  for (const Message& m : Samples()) valid.push_back(EncodePacket(m));
  for (int i = 0; i < 200'000; ++i) {
    Bytes b;
    if (i % 2 == 0) {
      // Pure noise, mostly with a plausible version and type so the bodies get exercised.
      b.resize(rng.Below(64));
      for (auto& x : b) x = static_cast<uint8_t>(rng.Next());
      if (b.size() >= 2 && rng.Below(4) != 0) {
        b[0] = kWireVersion;
        b[1] = static_cast<uint8_t>(1 + rng.Below(11));
      }
    } else {
      // A valid packet with a few bytes flipped.
      b = valid[rng.Below(valid.size())];
      for (uint64_t k = 1 + rng.Below(3); k > 0; --k) b[rng.Below(b.size())] ^= static_cast<uint8_t>(1 + rng.Below(255));
    }
    auto msgs = DecodePacket(b.data(), b.size());
    if (!msgs) continue;
    ++decoded;
    std::vector<Bytes> parts;
    for (const Message& m : *msgs) parts.push_back(EncodeMessage(m));
    const Bytes again = EncodeParts(parts);
    auto back = DecodePacket(again.data(), again.size());
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, *msgs);
  }
  EXPECT_GT(decoded, 0u);  // the mutation path reaches the decoders' success paths too
}

}  // namespace
}  // namespace hub::cluster::swim::detail
