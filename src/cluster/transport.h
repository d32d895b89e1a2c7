#pragma once
// The production driver of the SWIM core: UDP and TCP sockets on one port
// (P2P_BIND:P2P_PORT), every datagram and stream message sealed with the
// keyring (envelope.h), timers from Node::NextDeadline, all on one strand of
// the given io_context. TCP carries what UDP cannot: push-pull state
// exchange, fallback pings and messages larger than a datagram, each as one
// length-prefixed request and one reply per connection, with a size limit
// and a deadline on every read.
//
// Frames on TCP: a 4-byte big-endian length, then that many sealed bytes; a
// zero length is an empty reply. The limit on a frame is
// swim::Options::max_stream_message + the envelope overhead.
//
// Time: the Node and the envelope see TransportOptions::clock (unix ms); the
// wake-up timer is a steady timer re-armed to Node::NextDeadline after every
// input (and at least once a second, which also refreshes Members() and the
// gauges).
//
// Thread-safe: every public method may be called from any thread (Stop: see
// there).

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cluster/envelope.h"
#include "cluster/swim/node.h"
#include "core/clock.h"
#include "core/result.h"

namespace boost::asio { class io_context; }

namespace hub { class Metrics; }

namespace hub::cluster {

struct TransportOptions {
  std::string bind = "0.0.0.0";      // P2P_BIND
  uint16_t port = 6881;              // P2P_PORT; 0 = pick one (tests), see port()
  std::string advertise_host;        // address others reach us at; "" = bind, or the
                                     // first non-loopback IPv4 when bind is 0.0.0.0
  EnvelopeOptions envelope;
  size_t max_datagram = 65'507;      // larger datagrams are dropped (counted)
  int64_t stream_timeout_ms = 10'000;  // a peer's request: read + reply within this
                                     // (our requests use OpenStream::timeout_ms)
  int64_t leave_timeout_ms = 1'000;  // Stop waits this long for the leave to spread
  size_t max_inbound_streams = 64;   // more concurrent incoming TCP requests are closed (dropped)
  const Clock* clock = nullptr;      // null = the system clock; must outlive the Cluster
};

// Counters for metrics and /api/peers; a snapshot. Packets and bytes are
// sealed, on the wire (stream bytes include the 4-byte frame headers).
struct TransportStats {
  uint64_t packets_in = 0, packets_out = 0, bytes_in = 0, bytes_out = 0;
  uint64_t streams_in = 0, streams_out = 0;  // requests received / requests opened
  uint64_t streams_failed = 0;       // our requests that got no reply (refused, timeout, bad reply)
  uint64_t timeouts = 0;             // streams (either direction) cut at their deadline
  uint64_t rejected[7] = {};         // by OpenFailure (also frames over the limit: kTooLarge)
  uint64_t dropped = 0;              // oversized, send errors, send queue or stream limit full
  uint64_t malformed = 0;            // opened but undecodable (the core's count)
};

class Cluster {
 public:
  // `delegate` outlives the Cluster; its callbacks run on the cluster's strand.
  // `metrics` may be null.
  Cluster(boost::asio::io_context& io, swim::Options options, TransportOptions transport,
          Keyring keyring, swim::Delegate* delegate, Metrics* metrics);
  ~Cluster();
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  // Binds UDP and TCP and starts the protocol. A clear error when the port is
  // taken, the bind address or the envelope options are invalid, the keyring
  // is empty or the node has no name. Once only. options.address is replaced
  // by address().
  Result<void> Start();
  uint16_t port() const;                     // the bound port (after Start)
  // "ip:port" we advertise: advertise_host, else bind, else (bind 0.0.0.0 or
  // ::) the first up non-loopback IPv4 address, else 127.0.0.1. After Start.
  std::string address() const;

  // These four are queued to the strand and return at once; ignored before
  // Start and after Stop. Addresses are "host:port" (a name is resolved),
  // "[v6]:port", or a host alone (our port).
  void Join(std::vector<std::string> addresses);
  void Broadcast(std::string type, std::string payload);
  void UpdateMeta();
  // Rotation without restart: every later packet is sealed with the new
  // primary and opened with any key of it. An empty ring is refused (logged).
  void SetKeyring(Keyring keyring);

  // A snapshot, sorted by name: refreshed on every member change and at
  // least once a second (last_seen_ms, rtt_ms). Within a delegate callback it
  // does not yet reflect the step being processed, except the changed member.
  std::vector<swim::Member> Members() const;
  TransportStats Stats() const;

  // Leaves gracefully: waits until the leave went out in datagrams to
  // min(alive peers, gossip_nodes) members, or leave_timeout_ms; then closes
  // the sockets, cancels the timers and waits for in-flight handlers; no
  // delegate callback runs after it returns. Idempotent; the destructor calls
  // it. The io_context must be run by another thread (or be stopped). Called
  // from a thread running the io_context, it cannot wait: it leaves, closes
  // in the same step and returns.
  void Stop();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace hub::cluster
