#pragma once
// A DNS message codec for Multicast DNS (RFC 1035 §4, RFC 6762 §18): header,
// questions, answer/authority/additional records; rdata decoded for A, PTR,
// SRV, TXT and NSEC (other types are kept as raw bytes); the mDNS
// unicast-response bit of a question and cache-flush bit of a record are
// split out of the class. Names are label sequences, so a DNS-SD instance
// label may hold dots, spaces or any UTF-8 (RFC 6763 §4.3).
//
// Decode is for hostile input: every length is checked against the data, a
// compression pointer must point strictly backwards (so it cannot loop), a
// name has at most 255 wire bytes and labels at most 63; anything else is a
// clean errc, never a crash, an unbounded loop or an allocation that the
// input size does not pay for. Pure functions; thread-safe.

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <variant>
#include <vector>

#include "core/result.h"

namespace hub::cluster::mdns {

enum class errc {
  truncated = 1,   // a length or count reaches past the end of the message
  bad_name,        // a label over 63 bytes, a name over 255, an empty or reserved label
  bad_pointer,     // a compression pointer that points forward, at itself, or past the end
  bad_rdata,       // rdata that does not match its type's layout
  too_large,       // the message (or a string) does not fit the size limit
  socket,          // the driver could not open, bind or join (see the message)
};
const std::error_category& category();
inline std::error_code make_error_code(errc e) { return {static_cast<int>(e), category()}; }

inline constexpr size_t kMaxLabel = 63;
inline constexpr size_t kMaxName = 255;          // wire bytes, length octets and root included
inline constexpr size_t kMaxMessage = 9000;      // RFC 6762 §17

enum RrType : uint16_t {
  kA = 1, kPtr = 12, kTxt = 16, kAaaa = 28, kSrv = 33, kNsec = 47, kAny = 255,
};
inline constexpr uint16_t kClassIn = 1;

// Labels without the root, e.g. {"hub 1", "_stream-hub", "_tcp", "local"}.
using Name = std::vector<std::string>;
Name MakeName(std::string_view dotted);            // splits at '.', no escapes; "" = root
bool SameName(const Name& a, const Name& b);       // ASCII case-insensitive (RFC 6762 §16)
std::string ToString(const Name& n);               // dotted, '.' and '\' in labels escaped

using Ipv4 = std::array<uint8_t, 4>;

struct Srv {
  uint16_t priority = 0, weight = 0, port = 0;
  Name target;
};
struct Nsec {
  Name next;
  std::vector<uint16_t> types;                     // ascending, no duplicates
};
struct Txt {
  std::vector<std::string> strings;                // each at most 255 bytes
  bool operator==(const Txt&) const = default;
};
using Raw = std::vector<uint8_t>;                  // any other type
using Rdata = std::variant<Raw, Ipv4, Name /*PTR*/, Srv, Txt, Nsec>;

struct Question {
  Name name;
  uint16_t type = kAny;
  uint16_t qclass = kClassIn;
  bool unicast_response = false;                   // QU bit (top bit of the class)
};

struct Record {
  Name name;
  uint16_t type = kA;
  uint16_t rclass = kClassIn;
  bool cache_flush = false;                        // top bit of the class
  uint32_t ttl = 0;                                // seconds
  Rdata data;                                      // the alternative matching `type`
};

struct Message {
  static constexpr uint16_t kResponse = 0x8000;    // QR
  static constexpr uint16_t kAuthoritative = 0x0400;
  static constexpr uint16_t kTruncated = 0x0200;   // TC: more known answers follow (§7.2)
  uint16_t id = 0;
  uint16_t flags = 0;
  std::vector<Question> questions;
  std::vector<Record> answers, authorities, additionals;

  bool is_response() const { return (flags & kResponse) != 0; }
  bool truncated() const { return (flags & kTruncated) != 0; }
};

// Messages longer than 65535 bytes are refused (errc::too_large).
Result<Message> Decode(std::span<const uint8_t> bytes);

// Names are compressed (owner names, PTR and SRV targets; never NSEC's next
// name, RFC 4034 §4.1.1). Fails with errc::too_large above `max_size`, and
// with errc::bad_name / bad_rdata for what Decode would refuse.
Result<std::vector<uint8_t>> Encode(const Message& m, size_t max_size = kMaxMessage);

// The rdata as it would appear on the wire, uncompressed. With `fold_case`,
// names are lower-cased: equal results mean the same record data (§9), and
// the unfolded bytes are what the probe tiebreak compares (§8.2).
std::vector<uint8_t> RdataBytes(const Record& r, bool fold_case);

// Same name (case-insensitive), type, class and rdata; TTL and flags ignored.
bool SameRecord(const Record& a, const Record& b);

}  // namespace hub::cluster::mdns

template <>
struct std::is_error_code_enum<hub::cluster::mdns::errc> : std::true_type {};
