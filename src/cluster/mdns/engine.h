#pragma once
// The DNS-SD over mDNS responder and browser as a sans-IO core
// (ARCHITECTURE.md #3): it never touches a socket, a clock or a thread. A
// driver (MdnsDiscovery in production, a simulated link in tests) hands it the
// time and what arrives, calls Tick at NextWakeMs, and sends what
// TakeOutgoing returns. Deterministic for a given seed and input sequence.
// Not thread-safe: the driver calls it from one thread.
//
// Responder (RFC 6762 §6-§10, RFC 6763): advertises
//   _stream-hub._tcp.local            PTR  <instance>._stream-hub._tcp.local  (shared, 4500 s)
//   _services._dns-sd._udp.local      PTR  _stream-hub._tcp.local             (shared, 4500 s)
//   <instance>._stream-hub._tcp.local SRV  0 0 <port> <host>.local            (unique, 120 s)
//   <instance>._stream-hub._tcp.local TXT  version=1.0 node_name=<name> ...   (unique, 4500 s)
//   <host>.local                      A    each address                       (unique, 120 s)
// plus NSEC for the two unique names (§6.1). Probes three times 250 ms apart
// (after 0-250 ms), renames on conflict ("name (2)", host "host-2"; §9) and
// breaks simultaneous probes by the §8.2 tiebreak, announces three times
// (0, 1 s, 3 s), answers queries with known-answer suppression (§7.1) and
// duplicate-answer suppression (§7.4), by multicast, or by unicast for the QU
// bit (§5.4) and for legacy queries from a port other than 5353 (§6.7), and
// sends goodbyes (TTL 0) on Stop.
//
// Browser: queries PTR _stream-hub._tcp.local at 1 s, 2 s, 4 s, ... (capped;
// §5.2) with known answers, caches what it hears (only records of this
// service type and the hosts its SRVs name; bounded), honours cache-flush
// (§10.2) and goodbyes (§10.1), refreshes wanted records at 80-95% of their
// TTL, and reports each resolved instance (PTR + SRV + TXT + A) as one
// Candidate per address, other than its own.

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "cluster/discovery/discovery.h"
#include "cluster/mdns/dns.h"

namespace hub::cluster::mdns {

inline constexpr uint16_t kPort = 5353;
inline constexpr Ipv4 kGroup = {224, 0, 0, 251};

struct Endpoint {
  Ipv4 ip{};
  uint16_t port = kPort;
  bool operator==(const Endpoint&) const = default;
};
inline constexpr Endpoint kMulticast{kGroup, kPort};

struct Datagram {
  Endpoint to;                          // kMulticast, or a unicast reply's destination
  std::vector<uint8_t> bytes;
};

struct EngineOptions {
  // What to advertise. An empty instance browses only.
  std::string instance;                 // the DNS-SD instance label (node_name); cut to 63 bytes
  std::string host;                     // label of <host>.local; "" = from instance: a-z 0-9 and
                                        // '-' (others become '-'), or "stream-hub" if none is left
  uint16_t port = 6881;
  std::map<std::string, std::string> txt;   // TXT "key=value" strings, in key order
  std::vector<Ipv4> addresses;          // this host's A records
  std::string service = kServiceType;   // "_stream-hub._tcp"
  bool browse = true;
  uint64_t seed = 1;                    // random delays; equal seeds give equal runs
  uint32_t host_ttl_s = 120;            // SRV, A, NSEC (RFC 6762 §10)
  uint32_t other_ttl_s = 4500;          // PTR, TXT (RFC 6762 §10: 75 minutes)
  int announcements = 3;                // at least 2 (§8.3): at 0, 1 s, 3 s
  int64_t max_query_interval_ms = 3'600'000;  // browse back-off cap (§5.2: 60 min)
  size_t max_cache = 4096;              // cached records; records beyond are not cached
  size_t max_packet = 1440;             // bytes of DNS payload per datagram (fits Ethernet)
};

struct Event {
  enum class Kind {
    kFound,         // candidate: a resolved instance at one address
    kRemoved,       // candidate: gone (goodbye, TTL expiry, changed address)
    kAdvertised,    // name: probing done, the instance name is ours and announced
    kRenamed,       // name (new), old_name: an instance name clash (§9)
    kHostRenamed,   // name (new), old_name: a host name clash
  };
  Kind kind = Kind::kFound;
  Candidate candidate;
  std::string instance;                 // kFound/kRemoved: the remote instance label
  std::string name, old_name;
};

struct EngineStats {
  uint64_t packets_in = 0, packets_out = 0;
  uint64_t malformed = 0;               // refused by Decode
  uint64_t ignored = 0;                 // well-formed but not for us (bad port, opcode, rcode)
  uint64_t conflicts = 0;               // renames (instance or host)
  uint64_t probe_defers = 0;            // simultaneous probes lost (§8.2)
  uint64_t answers_suppressed = 0;      // by known answers or duplicate answers
  uint64_t cache_full = 0;              // records not cached because max_cache was reached
};

class Engine {
 public:
  explicit Engine(EngineOptions options);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  void Start(int64_t now_ms);
  // Queues goodbyes for what was announced; afterwards the engine is inert.
  void Stop(int64_t now_ms);
  // A datagram from `from` (its source address and port). Malformed input is
  // counted and dropped. Runs what is due at now_ms.
  void Receive(int64_t now_ms, const Endpoint& from, std::span<const uint8_t> bytes);
  // Runs what is due at now_ms (probes, announcements, delayed answers,
  // queries, cache expiry).
  void Tick(int64_t now_ms);
  // When Tick next has work; INT64_MAX if never.
  int64_t NextWakeMs() const;

  std::vector<Datagram> TakeOutgoing();
  std::vector<Event> TakeEvents();

  std::string instance() const;         // the current (possibly renamed) instance label
  std::string host() const;             // the current host label
  bool advertised() const;              // probing succeeded and the records are announced
  const EngineStats& stats() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

// "name (2)" for the second try of "name", keeping within 63 bytes (§9; RFC 6763 §4.1).
std::string NextInstanceName(const std::string& base, int n);

}  // namespace hub::cluster::mdns
