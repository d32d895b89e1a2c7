#include "cluster/mdns/dns.h"

#include <gtest/gtest.h>

#include <random>

namespace hub::cluster::mdns {
namespace {

using Bytes = std::vector<uint8_t>;

// A hand-written wire message: header + body.
Bytes Packet(uint16_t flags, uint16_t qd, uint16_t an, uint16_t ns, uint16_t ar, const Bytes& body) {
  const uint8_t head[12] = {0, 0, static_cast<uint8_t>(flags >> 8), static_cast<uint8_t>(flags),
                            0, static_cast<uint8_t>(qd), 0, static_cast<uint8_t>(an),
                            0, static_cast<uint8_t>(ns), 0, static_cast<uint8_t>(ar)};
  // Sized once (GCC 12 at -O2 warns falsely about insert() after a 12-byte vector).
  Bytes b(sizeof head + body.size());
  std::copy(std::begin(head), std::end(head), b.begin());
  std::copy(body.begin(), body.end(), b.begin() + sizeof head);
  return b;
}

void Label(Bytes& b, std::string_view s) {
  b.push_back(static_cast<uint8_t>(s.size()));
  b.insert(b.end(), s.begin(), s.end());
}

errc Code(const Result<Message>& r) {
  EXPECT_FALSE(r.ok());
  return r.ok() ? errc{} : static_cast<errc>(r.error().code.value());
}

Message Sample() {
  Message m;
  m.flags = Message::kResponse | Message::kAuthoritative;
  m.questions.push_back(Question{MakeName("_stream-hub._tcp.local"), kPtr, kClassIn, true});
  const Name inst = {"Hub One.x", "_stream-hub", "_tcp", "local"};
  m.answers.push_back(Record{MakeName("_stream-hub._tcp.local"), kPtr, kClassIn, false, 4500, inst});
  m.answers.push_back(Record{inst, kSrv, kClassIn, true, 120, Srv{1, 2, 6881, MakeName("hub-one.local")}});
  m.answers.push_back(Record{inst, kTxt, kClassIn, true, 4500, Txt{{"version=1.0", "node_name=Hub One.x", ""}}});
  m.additionals.push_back(Record{MakeName("hub-one.local"), kA, kClassIn, true, 120, Ipv4{10, 99, 0, 1}});
  m.additionals.push_back(Record{MakeName("hub-one.local"), kNsec, kClassIn, true, 120,
                                 Nsec{MakeName("hub-one.local"), {kA, kAaaa, 1000}}});
  m.additionals.push_back(Record{MakeName("hub-one.local"), kAaaa, kClassIn, true, 120, Raw(16, 0xAB)});
  return m;
}

TEST(Dns, RoundTripsEveryType) {
  Message m = Sample();
  auto bytes = Encode(m);
  ASSERT_TRUE(bytes.ok()) << bytes.error().message;
  auto d = Decode(*bytes);
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_EQ(d->flags, m.flags);
  ASSERT_EQ(d->questions.size(), 1u);
  EXPECT_TRUE(d->questions[0].unicast_response);
  EXPECT_EQ(d->questions[0].type, kPtr);
  EXPECT_EQ(d->questions[0].qclass, kClassIn);
  ASSERT_EQ(d->answers.size(), 3u);
  ASSERT_EQ(d->additionals.size(), 3u);
  for (size_t i = 0; i < m.answers.size(); ++i) {
    EXPECT_TRUE(SameRecord(d->answers[i], m.answers[i])) << i;
    EXPECT_EQ(d->answers[i].cache_flush, m.answers[i].cache_flush) << i;
    EXPECT_EQ(d->answers[i].ttl, m.answers[i].ttl) << i;
    EXPECT_EQ(d->answers[i].name, m.answers[i].name) << "case and dots in labels survive";
  }
  for (size_t i = 0; i < m.additionals.size(); ++i) EXPECT_TRUE(SameRecord(d->additionals[i], m.additionals[i])) << i;
  EXPECT_EQ(std::get<Srv>(d->answers[1].data).port, 6881);
  EXPECT_EQ(std::get<Txt>(d->answers[2].data).strings.size(), 3u);
  EXPECT_EQ(std::get<Nsec>(d->additionals[1].data).types, (std::vector<uint16_t>{kA, kAaaa, 1000}));
  EXPECT_EQ(std::get<Ipv4>(d->additionals[0].data), (Ipv4{10, 99, 0, 1}));
}

TEST(Dns, CompressesRepeatedSuffixes) {
  Message m = Sample();
  auto bytes = Encode(m);
  ASSERT_TRUE(bytes.ok());
  size_t uncompressed = 12;
  for (const auto& q : m.questions) uncompressed += ToString(q.name).size() + 2 + 4;
  for (const auto* sec : {&m.answers, &m.additionals})
    for (const auto& r : *sec) uncompressed += ToString(r.name).size() + 2 + 10 + RdataBytes(r, false).size();
  EXPECT_LT(bytes->size() + 100, uncompressed);
  // The answer's owner name is a bare pointer to the question's name.
  auto d = Decode(*bytes);
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(SameName(d->answers[0].name, MakeName("_stream-hub._tcp.local")));
}

TEST(Dns, DecodesAHandWrittenCompressedResponse) {
  // _stream-hub._tcp.local PTR a._stream-hub._tcp.local, with pointers.
  Bytes body;
  Label(body, "_stream-hub");   // offset 12
  Label(body, "_tcp");
  Label(body, "local");
  body.push_back(0);
  body.insert(body.end(), {0, 12, 0, 1, 0, 0, 0x11, 0x94, 0, 4});   // PTR IN ttl 4500 rdlen 4
  Label(body, "a");
  body.insert(body.end(), {0xC0, 12});
  auto d = Decode(Packet(0x8400, 0, 1, 0, 0, body));
  ASSERT_TRUE(d.ok()) << d.error().message;
  ASSERT_EQ(d->answers.size(), 1u);
  EXPECT_EQ(d->answers[0].ttl, 4500u);
  EXPECT_EQ(std::get<Name>(d->answers[0].data), MakeName("a._stream-hub._tcp.local"));
}

TEST(Dns, RefusesShortHeaderAndOverstatedCounts) {
  EXPECT_EQ(Code(Decode(Bytes{0, 0, 0})), errc::truncated);
  EXPECT_EQ(Code(Decode(Packet(0, 200, 0, 0, 0, {}))), errc::truncated);
  EXPECT_EQ(Code(Decode(Packet(0, 0, 0, 0, 255, {0, 0, 1, 0, 1}))), errc::truncated);
  Bytes body;
  Label(body, "x");
  body.push_back(0);
  body.insert(body.end(), {0, 1, 0, 1});
  EXPECT_TRUE(Decode(Packet(0, 1, 0, 0, 0, body)).ok());
  EXPECT_EQ(Code(Decode(Packet(0, 2, 0, 0, 0, body))), errc::truncated);
  EXPECT_EQ(Code(Decode(Bytes(70000, 0))), errc::too_large);
}

TEST(Dns, RefusesCompressionLoopsAndForwardPointers) {
  // A pointer to itself (offset 12).
  EXPECT_EQ(Code(Decode(Packet(0, 1, 0, 0, 0, {0xC0, 12, 0, 1, 0, 1}))), errc::bad_pointer);
  // Two names pointing at each other: "a" -> ptr to 17, at 17 a pointer back to 12.
  Bytes loop;
  Label(loop, "a");                         // 12..13
  loop.insert(loop.end(), {0xC0, 17});      // 14..15 forward pointer
  loop.push_back(0);                        // 16
  loop.insert(loop.end(), {0xC0, 12});      // 17..18
  EXPECT_EQ(Code(Decode(Packet(0, 1, 0, 0, 0, loop))), errc::bad_pointer);
  // A label, then a pointer back to that same label: a loop through labels.
  Bytes self;
  Label(self, "b");                         // 12..13
  self.insert(self.end(), {0xC0, 12, 0, 1, 0, 1});
  EXPECT_EQ(Code(Decode(Packet(0, 1, 0, 0, 0, self))), errc::bad_pointer);
  // Pointers past the end, into the header, and cut off.
  EXPECT_EQ(Code(Decode(Packet(0, 1, 0, 0, 0, {0xC3, 0xFF, 0, 1, 0, 1}))), errc::bad_pointer);
  EXPECT_EQ(Code(Decode(Packet(0, 2, 0, 0, 0, {1, 'a', 0, 0, 1, 0, 1, 0xC0, 2, 0, 1, 0, 1}))),
            errc::bad_pointer);
  Bytes cut;
  Label(cut, "abcdef");
  cut.insert(cut.end(), {0, 0, 1, 0, 1, 0xC0});   // the second question is half a pointer
  EXPECT_EQ(Code(Decode(Packet(0, 2, 0, 0, 0, cut))), errc::truncated);
}

TEST(Dns, RefusesBadLabelsAndLongNames) {
  EXPECT_EQ(Code(Decode(Packet(0, 1, 0, 0, 0, {0x40, 'a', 0, 0, 1, 0, 1}))), errc::bad_name);   // 64
  EXPECT_EQ(Code(Decode(Packet(0, 1, 0, 0, 0, {0x80, 0, 0, 1, 0, 1}))), errc::bad_name);
  EXPECT_EQ(Code(Decode(Packet(0, 1, 0, 0, 0, {5, 'a', 'b', 0, 1, 0}))), errc::truncated);
  // Five 63-byte labels: 321 bytes of name.
  Bytes longname;
  for (int i = 0; i < 5; ++i) Label(longname, std::string(63, 'a' + i));
  longname.insert(longname.end(), {0, 0, 1, 0, 1});
  EXPECT_EQ(Code(Decode(Packet(0, 1, 0, 0, 0, longname))), errc::bad_name);
  // The same length reached through a chain of pointers, each name valid alone.
  Bytes chain;
  size_t prev = 0;
  for (int i = 0; i < 5; ++i) {
    size_t at = 12 + chain.size();
    Label(chain, std::string(60, 'a' + i));
    if (i == 0) chain.push_back(0);
    else chain.insert(chain.end(), {static_cast<uint8_t>(0xC0 | prev >> 8), static_cast<uint8_t>(prev)});
    chain.insert(chain.end(), {0, 1, 0, 1});
    prev = at;
  }
  auto r = Decode(Packet(0, 5, 0, 0, 0, chain));
  EXPECT_EQ(Code(r), errc::bad_name);
}

TEST(Dns, RefusesRdataThatLiesAboutItsLength) {
  auto record = [](uint16_t type, uint16_t rdlen, Bytes rdata) {
    Bytes b;
    Label(b, "h");
    b.push_back(0);
    b.insert(b.end(), {static_cast<uint8_t>(type >> 8), static_cast<uint8_t>(type), 0, 1, 0, 0, 0, 120,
                       static_cast<uint8_t>(rdlen >> 8), static_cast<uint8_t>(rdlen)});
    b.insert(b.end(), rdata.begin(), rdata.end());
    return Packet(0x8400, 0, 1, 0, 0, b);
  };
  EXPECT_TRUE(Decode(record(kA, 4, {1, 2, 3, 4})).ok());
  EXPECT_EQ(Code(Decode(record(kA, 40, {1, 2, 3, 4}))), errc::truncated);          // past the end
  EXPECT_EQ(Code(Decode(record(kA, 5, {1, 2, 3, 4, 5}))), errc::bad_rdata);
  EXPECT_EQ(Code(Decode(record(kTxt, 3, {5, 'a', 'b'}))), errc::bad_rdata);       // string past rdata
  EXPECT_EQ(Code(Decode(record(kSrv, 6, {0, 0, 0, 0, 0, 1}))), errc::bad_rdata);
  // The SRV target's labels run on beyond the rdata into the next bytes.
  EXPECT_EQ(Code(Decode(record(kSrv, 8, {0, 0, 0, 0, 0, 1, 1, 'x', 0}))), errc::bad_rdata);
  EXPECT_EQ(Code(Decode(record(kPtr, 4, {1, 'x', 0, 0}))), errc::bad_rdata);      // a byte left over
  EXPECT_EQ(Code(Decode(record(kNsec, 3, {0, 0, 0}))), errc::bad_rdata);          // empty bitmap
  EXPECT_EQ(Code(Decode(record(kNsec, 4, {0, 0, 33, 0}))), errc::bad_rdata);      // bitmap > 32
  EXPECT_EQ(Code(Decode(record(kNsec, 2, {0, 0}))), errc::bad_rdata);             // window cut off
  EXPECT_EQ(Code(Decode(record(kNsec, 7, {0, 1, 1, 0x40, 0, 1, 0x40}))), errc::bad_rdata);   // windows not ascending
  auto txt = Decode(record(kTxt, 0, {}));
  ASSERT_TRUE(txt.ok());
  EXPECT_TRUE(std::get<Txt>(txt->answers[0].data).strings.empty());
}

TEST(Dns, EncodeRefusesWhatDecodeWould) {
  auto enc = [](Record r) {
    Message m;
    m.answers.push_back(std::move(r));
    auto b = Encode(m);
    return b.ok() ? errc{} : static_cast<errc>(b.error().code.value());
  };
  EXPECT_EQ(enc(Record{{std::string(64, 'a')}, kA, 1, false, 1, Ipv4{}}), errc::bad_name);
  EXPECT_EQ(enc(Record{{"a", "", "b"}, kA, 1, false, 1, Ipv4{}}), errc::bad_name);
  EXPECT_EQ(enc(Record{Name(5, std::string(60, 'a')), kA, 1, false, 1, Ipv4{}}), errc::bad_name);
  EXPECT_EQ(enc(Record{{"a"}, kTxt, 1, false, 1, Txt{{std::string(256, 'x')}}}), errc::bad_rdata);
  EXPECT_EQ(enc(Record{{"a"}, kA, 1, false, 1, Name{"b"}}), errc::bad_rdata);
  Message big;
  for (int i = 0; i < 200; ++i)
    big.answers.push_back(Record{{"h" + std::to_string(i), "local"}, kA, 1, false, 1, Ipv4{}});
  auto b = Encode(big, 1440);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().code, make_error_code(errc::too_large));
  EXPECT_TRUE(Encode(big, kMaxMessage).ok());
}

TEST(Dns, EmptyTxtIsOneZeroByte) {
  Record r{{"a"}, kTxt, 1, false, 1, Txt{}};
  EXPECT_EQ(RdataBytes(r, false), (Bytes{0}));
}

TEST(Dns, NamesCompareCaseInsensitivelyAndPrintEscaped) {
  EXPECT_TRUE(SameName(MakeName("Hub.LOCAL"), MakeName("hub.local.")));
  EXPECT_FALSE(SameName(MakeName("hub.local"), MakeName("hub2.local")));
  EXPECT_EQ(ToString(Name{"a.b", "local"}), "a\\.b.local");
  EXPECT_EQ(ToString(Name{}), ".");
  EXPECT_TRUE(MakeName("").empty());
}

// Mutations of valid messages: Decode never crashes, and whatever it accepts
// re-encodes to something that decodes to the same records.
TEST(Dns, MutatedMessagesDecodeCleanlyOrNotAtAll) {
  auto seed = Encode(Sample());
  ASSERT_TRUE(seed.ok());
  std::mt19937 rng(12345);
  int accepted = 0, refused = 0;
  for (int i = 0; i < 20000; ++i) {
    Bytes b = *seed;
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      switch (rng() % 4) {
        case 0: b[rng() % b.size()] = static_cast<uint8_t>(rng()); break;
        case 1: b.resize(rng() % (b.size() + 1)); break;
        case 2: b.insert(b.begin() + static_cast<long>(rng() % (b.size() + 1)), static_cast<uint8_t>(rng())); break;
        case 3: if (b.size() > 13) b[12 + rng() % (b.size() - 12)] = 0xC0; break;
      }
      if (b.empty()) b.push_back(0);
    }
    auto d = Decode(b);
    if (!d) {
      ++refused;
      continue;
    }
    ++accepted;
    auto again = Encode(*d, 65535);
    if (!again) continue;   // e.g. a decoded empty label cannot be re-encoded
    auto d2 = Decode(*again);
    ASSERT_TRUE(d2.ok()) << d2.error().message;
    ASSERT_EQ(d2->answers.size(), d->answers.size());
    for (size_t k = 0; k < d->answers.size(); ++k) ASSERT_TRUE(SameRecord(d->answers[k], d2->answers[k]));
  }
  EXPECT_GT(accepted, 100);
  EXPECT_GT(refused, 1000);
}

}  // namespace
}  // namespace hub::cluster::mdns
