#pragma once
// The SWIM wire format (README.md "Wire format"): compact binary, integers as
// LEB128 varints, strings as varint length + bytes. A packet is
//   version (1 byte, kWireVersion) | message
// and a message is a type byte and its body; a compound message carries up to
// 255 messages, each prefixed by its 16-bit big-endian length.
//
// Decoding checks every length against what is left and against the limits
// below, never allocates more than the input's size, rejects trailing bytes,
// nested compounds and unknown types, and is all-or-nothing: a packet with one
// bad part is refused whole.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "cluster/swim/node.h"

namespace hub::cluster::swim::detail {

inline constexpr uint8_t kWireVersion = 1;
inline constexpr size_t kMaxName = 255;        // node names and addresses
inline constexpr size_t kMaxMetaWire = 65'535;
inline constexpr size_t kMaxEventType = 64;
inline constexpr size_t kMaxPayloadWire = 1 << 20;
inline constexpr size_t kMaxCompound = 255;
// Bytes a compound adds around its parts: version, type, count; and per part.
inline constexpr size_t kCompoundHeader = 3;
inline constexpr size_t kCompoundPerPart = 2;

enum class Type : uint8_t {
  kPing = 1,
  kPingReq = 2,
  kAck = 3,
  kNack = 4,
  kAlive = 5,
  kSuspect = 6,
  kDead = 7,
  kEvent = 8,
  kCompound = 9,
  kPushPull = 10,  // stream only
  kEvents = 11,    // stream only
};

struct Ping {                 // "are you `target`?"; answered with Ack to source_addr
  uint32_t seq = 0;
  std::string target;
  std::string source_name;
  std::string source_addr;
  bool operator==(const Ping&) const = default;
};
struct PingReq {              // "ping `target` for me"; Ack (or Nack) goes to source_addr
  uint32_t seq = 0;
  std::string target;
  std::string target_addr;
  bool nack = false;
  std::string source_name;
  std::string source_addr;
  bool operator==(const PingReq&) const = default;
};
struct Ack {
  uint32_t seq = 0;
  bool operator==(const Ack&) const = default;
};
struct Nack {
  uint32_t seq = 0;
  bool operator==(const Nack&) const = default;
};
struct Alive {
  uint32_t incarnation = 0;
  std::string name;
  std::string addr;
  std::string meta;
  uint8_t protocol = 1;
  bool operator==(const Alive&) const = default;
};
struct Suspect {
  uint32_t incarnation = 0;
  std::string name;
  std::string from;
  bool operator==(const Suspect&) const = default;
};
struct Dead {                 // from == name: the node left
  uint32_t incarnation = 0;
  std::string name;
  std::string from;
  bool operator==(const Dead&) const = default;
};
struct WireEvent {
  std::string origin;
  uint64_t boot = 0;          // random per node life: a restarted origin restarts ids
  uint64_t id = 0;
  uint64_t lamport = 0;
  std::string type;           // 1..kMaxEventType bytes
  std::string payload;
  bool operator==(const WireEvent&) const = default;
};
struct MemberRecord {
  std::string name;
  std::string addr;
  std::string meta;
  uint32_t incarnation = 0;
  MemberState state = MemberState::kAlive;
  uint8_t protocol = 1;
  bool operator==(const MemberRecord&) const = default;
};
// Which events of one origin life a node has seen: `max_id` and, in bit i of
// `mask`, id max_id - 1 - i. Ids further back count as seen.
struct DigestEntry {
  std::string origin;
  uint64_t boot = 0;
  uint64_t max_id = 0;
  uint64_t mask = 0;
  bool operator==(const DigestEntry&) const = default;
};
struct PushPull {
  bool join = false;
  std::vector<MemberRecord> members;
  std::string user_state;     // Delegate::LocalState
  std::vector<WireEvent> events;
  std::vector<DigestEntry> digest;
  bool operator==(const PushPull&) const = default;
};
struct Events {
  std::vector<WireEvent> events;
  bool operator==(const Events&) const = default;
};

using Message = std::variant<Ping, PingReq, Ack, Nack, Alive, Suspect, Dead, WireEvent, PushPull,
                             Events>;

// Appends type + body (no version byte): a part for EncodeCompound or the
// broadcast queue.
void EncodeMessage(const Message& m, Bytes& out);
Bytes EncodeMessage(const Message& m);
// version + message.
Bytes EncodePacket(const Message& m);
// version + one message, or a compound of `parts` (each from EncodeMessage)
// when there are several. Precondition: 1..kMaxCompound parts, each < 64 KiB.
Bytes EncodeParts(const std::vector<Bytes>& parts);

// The messages of a packet, or nullopt when anything is malformed.
std::optional<std::vector<Message>> DecodePacket(const uint8_t* data, size_t size);

}  // namespace hub::cluster::swim::detail
