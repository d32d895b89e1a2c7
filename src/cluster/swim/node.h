#pragma once
// The SWIM membership protocol with the Lifeguard refinements, as a sans-IO
// core (ARCHITECTURE.md #3): it never touches a socket, a clock or a thread.
// A driver (src/cluster/transport.h in production, src/cluster/sim/ in tests)
// feeds it what arrives and the current time, and carries out what it asks
// for. Deterministic for a given seed and input sequence. Not thread-safe:
// the driver calls it from one strand.
//
// Wire messages are plaintext here; the driver seals every datagram and every
// stream message with the cluster key (src/cluster/envelope.h) before sending.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace hub::cluster::swim {

using Bytes = std::vector<uint8_t>;

enum class MemberState : uint8_t { kAlive, kSuspect, kDead, kLeft };
std::string_view ToString(MemberState s);  // "alive", "suspect", "dead", "left"

struct Member {
  std::string name;             // unique in the cluster (P2P_NODE_NAME)
  std::string address;          // "ip:port" of its gossip sockets
  std::string meta;             // the delegate's NodeMeta, at most Options::max_meta bytes
  uint32_t incarnation = 0;
  MemberState state = MemberState::kAlive;
  int64_t state_since_ms = 0;   // when it entered `state` (local time)
  int64_t last_seen_ms = 0;     // last message received directly from it; 0 = never
  double rtt_ms = -1;           // smoothed probe round trip; -1 = not measured
  uint8_t protocol = 1;         // its protocol version
  bool is_self = false;
};

// A cluster-wide event: small, typed, delivered at most once to each node's
// delegate (de-duplicated by (origin, id)), ordered loosely by Lamport time.
// Events are hints; durable state stays on the storage.
struct Event {
  std::string origin;           // node that emitted it
  uint64_t id = 0;              // per-origin sequence number
  uint64_t lamport = 0;         // Lamport time at emission
  std::string type;             // e.g. "video.ready"; 1..64 bytes
  std::string payload;          // at most Options::max_event_payload bytes
  bool local = false;           // emitted by this node (Broadcast), not received
};

// What the application plugs into the protocol (memberlist's Delegate).
// Called synchronously from the core's methods; must not call back into Node.
class Delegate {
 public:
  virtual ~Delegate() = default;
  // Metadata advertised with this node's alive messages (e.g. HTTP address,
  // version). At most `limit` bytes; longer is truncated.
  virtual std::string NodeMeta(size_t limit) { (void)limit; return {}; }
  // An event from the cluster (or from this node, when `e.local`), once per
  // node life.
  virtual void OnEvent(const Event& e) { (void)e; }
  // State exchanged in push-pull (join and every anti-entropy round).
  virtual std::string LocalState(bool join) { (void)join; return {}; }
  virtual void MergeRemoteState(std::string_view state, bool join) { (void)state; (void)join; }
  // A member (self included, Member::is_self) joined, or changed state,
  // incarnation, metadata or address.
  virtual void OnMemberChange(const Member& m) { (void)m; }
  // Another node claims our name from another address, or two nodes share a
  // name: logged by the application; membership keeps the first.
  virtual void OnNameConflict(const Member& existing, const Member& other) { (void)existing; (void)other; }
};

// Timing presets mirror memberlist's DefaultLANConfig / DefaultWANConfig /
// DefaultLocalConfig so figures can be set beside it.
struct Options {
  std::string name;                        // required
  std::string address;                     // required: "ip:port" others reach us at
  uint8_t protocol = 1;                    // this node's protocol version
  int64_t probe_interval_ms = 1000;        // one member probed per interval
  int64_t probe_timeout_ms = 500;          // direct ack expected within (scaled by awareness)
  int indirect_checks = 3;                 // k members asked to ping-req a silent target
  int64_t gossip_interval_ms = 200;        // piggyback round period
  int gossip_nodes = 3;                    // members per gossip round
  int64_t gossip_to_dead_ms = 30'000;      // keep gossiping to dead members this long
  int retransmit_mult = 4;                 // broadcasts sent retransmit_mult*ceil(log10(n+1)) times
  int suspicion_mult = 4;                  // min suspicion timeout = mult*max(1,log10(n))*probe_interval
  int suspicion_max_timeout_mult = 6;      // max = this * min, shrinking with confirmations
  int awareness_max_multiplier = 8;        // Lifeguard local health: probe timeout/interval scale cap
  int64_t push_pull_interval_ms = 5'000;   // anti-entropy with one random member (P2P_HEARTBEAT_INTERVAL);
                                           // x (ceil(log2(n/32))+1) beyond 32 members, as memberlist
  int64_t heartbeat_interval_ms = 5'000;   // re-broadcast own alive, same incarnation, retransmit_mult
                                           // times (P2P_HEARTBEAT_INTERVAL)
  int64_t dead_reclaim_ms = 0;             // a dead name may come back from a new address after this;
                                           // 0 = not before it is reaped (a left name: at once)
  size_t max_packet = 1400;                // plaintext datagram budget (envelope adds its overhead)
  size_t max_meta = 512;                  // alive messages with more are refused
  size_t max_event_payload = 1024;
  size_t event_catchup = 256;              // recent events kept and sent in push-pull
  size_t max_stream_message = 8 << 20;     // push-pull / large message cap
  int64_t stream_timeout_ms = 10'000;      // OpenStream::timeout_ms for push-pull and events (memberlist TCPTimeout)
  int64_t reap_dead_ms = 600'000;          // dead/left members stay in Members() (and dead ones are
                                           // retried by push-pull, healing partitions) this long

  // push_pull_interval_ms and heartbeat_interval_ms stay 5 s in every preset
  // (P2P_HEARTBEAT_INTERVAL; memberlist's push-pull is 30 s LAN, 60 s WAN).
  static Options Lan();                    // the defaults above
  static Options Wan();                    // memberlist WAN: probe 5 s/3 s, gossip 500 ms to 4, suspicion 6,
                                           // gossip to dead 60 s, stream timeout 30 s
  static Options Local();                  // memberlist Local: probe 1 s/200 ms, gossip 100 ms, suspicion 3,
                                           // 1 indirect check, retransmit 2, gossip to dead 15 s, stream 1 s
};

// What the core asks its driver to do.
struct SendPacket {                        // one UDP datagram
  std::string to;                          // "ip:port"
  Bytes bytes;
};
struct OpenStream {                        // a TCP request; the reply comes back through
  uint64_t id = 0;                         // Node::HandleStreamReply(id, ...)
  std::string to;
  Bytes bytes;
  int64_t timeout_ms = 0;
};
using Output = std::variant<SendPacket, OpenStream>;

struct Stats {
  uint64_t packets_in = 0, packets_out = 0, bytes_in = 0, bytes_out = 0;
  uint64_t malformed = 0;                  // undecodable plaintext (after the envelope)
  uint64_t streams_in = 0, streams_out = 0;
  int health = 0;                          // Lifeguard awareness score, 0 = healthy
  uint64_t events_in = 0;                  // events delivered from other nodes
  uint64_t events_refused = 0;             // Broadcast calls refused (see Broadcast)
  uint64_t refutes = 0;                    // suspect/dead claims about us refuted
  uint64_t probes = 0, probe_failures = 0; // probes started / ending with a suspicion
};

class Node {
 public:
  Node(Options options, Delegate* delegate, uint64_t seed, int64_t now_ms);
  ~Node();

  // Contacts each address by push-pull over a stream; members learned there
  // are merged. Safe to call again (rejoin) and with our own address (skipped).
  // A failed contact is silent: the driver or discovery retries.
  void Join(const std::vector<std::string>& addresses, int64_t now_ms);
  // Broadcasts our departure (a dead message about ourselves: "left"). After
  // Leave the node ignores all input and only gossips until its queue is
  // empty (NextDeadline is then INT64_MAX); the driver waits a little, then
  // destroys it.
  void Leave(int64_t now_ms);

  // Input from the driver.
  void HandlePacket(std::string_view from, const uint8_t* data, size_t size, int64_t now_ms);
  // A stream request from a peer; returns the reply (empty: none).
  Bytes HandleStream(std::string_view from, const uint8_t* data, size_t size, int64_t now_ms);
  // The reply to OpenStream `id`, or nullopt when it failed or timed out.
  void HandleStreamReply(uint64_t id, std::optional<Bytes> reply, int64_t now_ms);
  // Runs every timer due at `now_ms`.
  void Tick(int64_t now_ms);
  // The earliest time Tick has work; the driver sleeps until then (or until input).
  int64_t NextDeadline() const;
  // Moves out what to send.
  std::vector<Output> TakeOutputs();

  // Queues a cluster-wide event and delivers it locally at once (local=true).
  // Refused (stats().events_refused) when `type` is not 1..64 bytes, the
  // payload exceeds max_event_payload, or after Leave. An event that fits a
  // datagram rides piggyback through the broadcast queue; a larger one (only
  // when max_event_payload is set near or above max_packet) is sent by
  // stream to gossip_nodes random members, each of which passes it on the
  // same way once; push-pull catch-up covers whoever that misses.
  void Broadcast(std::string type, std::string payload, int64_t now_ms);
  // Re-reads the delegate's NodeMeta and gossips it (incarnation bumped).
  void UpdateMeta(int64_t now_ms);

  std::vector<Member> Members() const;     // by name; includes self; dead/left kept reap_dead_ms
  size_t NumAlive() const;                 // members in state alive, self included
  const Stats& stats() const;
  const Options& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hub::cluster::swim
