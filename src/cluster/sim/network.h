#pragma once
// A deterministic simulated network for sans-IO protocol cores (the in-memory
// twin of src/cluster/transport.h): virtual time in milliseconds, one event
// queue, datagrams with latency, jitter (hence reordering), loss and
// duplication, reliable request/reply streams, partitions, endpoints that go
// down and come back. Every random choice comes from one seed, and events at
// the same instant run in the order they were scheduled, so a run is
// bit-for-bit reproducible; trace_hash() summarises everything delivered.
//
// Single-threaded; not thread-safe. See README.md for the delivery rules.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "cluster/swim/node.h"

namespace hub::cluster::sim {

// Lets unordered_map<std::string, ...> be searched with a string_view.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// What the network drives: a sans-IO core seen from its driver (swim::Node
// has exactly this shape; tests attach fakes).
class Endpoint {
 public:
  virtual ~Endpoint() = default;
  virtual void HandlePacket(std::string_view from, const uint8_t* data, size_t size,
                            int64_t now_ms) = 0;
  virtual swim::Bytes HandleStream(std::string_view from, const uint8_t* data, size_t size,
                                   int64_t now_ms) = 0;
  virtual void HandleStreamReply(uint64_t id, std::optional<swim::Bytes> reply,
                                 int64_t now_ms) = 0;
  virtual void Tick(int64_t now_ms) = 0;
  // INT64_MAX: nothing scheduled.
  virtual int64_t NextDeadline() const = 0;
  virtual std::vector<swim::Output> TakeOutputs() = 0;
};

// Conditions on every link (one set for the whole network; change them
// between runs with set_link).
struct LinkOptions {
  int64_t latency_ms = 1;         // one-way base latency of a datagram
  int64_t jitter_ms = 0;          // + uniform [0, jitter_ms] per datagram: datagrams overtake
  double loss = 0;                // probability a datagram is lost
  double duplicate = 0;           // probability a datagram arrives twice (independent delays)
  int64_t stream_latency_ms = 1;  // one way, request and reply each; streams never lose data,
  double stream_failure = 0;      // but fail (nullopt at their timeout) with this probability
};

struct NetworkOptions {
  uint64_t seed = 1;
  LinkOptions link;
};

// Per endpoint; bytes are the endpoint's plaintext (no envelope, no headers).
struct EndpointCounters {
  uint64_t packets_out = 0, bytes_out = 0;      // datagrams handed to the network
  uint64_t packets_in = 0, bytes_in = 0;        // datagrams delivered
  uint64_t streams_out = 0, streams_in = 0;     // requests opened / requests served
  uint64_t stream_bytes_out = 0;                // requests sent + replies sent
  uint64_t stream_bytes_in = 0;                 // requests received + replies received
  uint64_t streams_failed = 0;                  // opened streams that got nullopt
};

struct NetworkStats {
  uint64_t delivered = 0;     // datagrams handed to an endpoint
  uint64_t lost = 0;          // dropped by `loss`
  uint64_t duplicated = 0;
  uint64_t blocked = 0;       // dropped by a partition
  uint64_t unreachable = 0;   // to an unknown address or a down endpoint
  uint64_t streams = 0, streams_failed = 0;
  uint64_t ticks = 0;
  uint64_t stuck_deadlines = 0;  // NextDeadline() still <= now right after Tick(now)
};

class Network {
 public:
  explicit Network(NetworkOptions options);
  ~Network();
  Network(const Network&) = delete;
  Network& operator=(const Network&) = delete;

  // Adds an endpoint reachable at `address` (unique), up. `ep` must stay
  // valid while it is up. Returns its id (0, 1, ...).
  int Attach(std::string address, Endpoint* ep);
  // Takes the endpoint down at once (a crash: it neither sends nor receives
  // again). Datagrams it already sent still arrive; datagrams to it are lost;
  // streams to it fail after their timeout; replies to its streams vanish.
  void Down(int id);
  // Puts a (new) endpoint at the same address; the old one must be down.
  void Up(int id, Endpoint* ep);
  bool up(int id) const;

  // Call after calling into an endpoint directly (Join, Broadcast, ...):
  // collects what it wants to send and reschedules its timer.
  void Poke(int id);

  // Nodes in different groups cannot exchange datagrams or streams; ids not
  // listed form one more group together. Replaces any earlier partition.
  void Partition(const std::vector<std::vector<int>>& groups);
  void Heal();
  bool CanReach(int from, int to) const;

  const LinkOptions& link() const { return options_.link; }
  void set_link(const LinkOptions& link) { options_.link = link; }

  // Runs every event up to and including `until_ms`; now() is then until_ms.
  void RunUntil(int64_t until_ms);
  void RunFor(int64_t ms) { RunUntil(now_ + ms); }
  int64_t now() const { return now_; }

  int size() const { return static_cast<int>(nodes_.size()); }
  const std::string& address(int id) const { return nodes_[id].address; }
  int Find(std::string_view address) const;  // -1 if unknown
  const EndpointCounters& counters(int id) const { return nodes_[id].counters; }
  const NetworkStats& stats() const { return stats_; }

  // A hash of every delivery (time, endpoints, bytes) and of whatever the
  // caller mixes in: equal for equal runs.
  uint64_t trace_hash() const { return trace_; }
  void Mix(uint64_t value);

  // Uniform in [0, bound) from the network's generator (for scenario choices
  // that must follow the seed too).
  uint64_t Random(uint64_t bound);

 private:
  enum class Kind : uint8_t { kTick, kDatagram, kStreamRequest, kStreamReply, kStreamFail };
  struct Entry {
    int64_t at;
    uint64_t seq;
    uint32_t ref;   // node id (kTick) or flight slot
    uint32_t gen;   // timer generation (kTick)
    Kind kind;
  };
  struct Later {
    bool operator()(const Entry& a, const Entry& b) const {
      return a.at != b.at ? a.at > b.at : a.seq > b.seq;
    }
  };
  struct Flight {
    int from = -1, to = -1;
    uint32_t from_epoch = 0;
    uint64_t stream_id = 0;
    int64_t deadline = 0;     // stream: when the opener gives up
    swim::Bytes bytes;
  };
  struct Node {
    std::string address;
    Endpoint* ep = nullptr;
    bool up = false;
    uint32_t epoch = 0;       // bumped by Down/Up: old streams must not reach a new endpoint
    int group = 0;
    int64_t scheduled = INT64_MAX;
    uint32_t tick_gen = 0;
    EndpointCounters counters;
  };

  void Schedule(int64_t at, Kind kind, uint32_t ref, uint32_t gen = 0);
  uint32_t NewFlight();
  void FreeFlight(uint32_t slot);
  void Flush(int id, bool after_tick = false);
  void Send(int from, swim::SendPacket& p);
  void Open(int from, swim::OpenStream& s);
  void FailStream(uint32_t slot);  // schedules the nullopt reply at the deadline
  void Dispatch(const Entry& e);
  int64_t Delay();
  uint64_t Next();
  double NextUnit();

  NetworkOptions options_;
  int64_t now_ = 0;
  uint64_t seq_ = 0;
  uint64_t rng_[4];
  uint64_t trace_ = 0;
  std::vector<Entry> heap_;
  std::vector<Flight> flights_;
  std::vector<uint32_t> free_flights_;
  std::vector<Node> nodes_;
  std::unordered_map<std::string, int, StringHash, std::equal_to<>> by_address_;
  NetworkStats stats_;
};

}  // namespace hub::cluster::sim
