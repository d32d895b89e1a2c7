#pragma once
// A cluster of swim::Node on the simulated network (network.h): each node has
// its own recording Delegate, its own seed derived from the cluster's seed,
// and is ticked at its NextDeadline. Scenario tests and the benchmark drive
// it: add nodes, join, kill, restart, leave, broadcast events, partition, run
// virtual time, and ask what each node has seen.
//
// Single-threaded; not thread-safe. Node ids are dense (0, 1, ...); a node's
// name is "node-<id>" and its address "10.a.b.c:7946" unless given.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "cluster/sim/network.h"
#include "cluster/swim/node.h"

namespace hub::cluster::sim {

struct ClusterOptions {
  uint64_t seed = 1;
  LinkOptions link;
  swim::Options node = swim::Options::Lan();  // for every node; name and address are set per node
};

// One OnMemberChange as a node's delegate saw it. `member` is a node id, or
// -1 for a name this cluster never created.
struct MemberChange {
  int64_t at_ms;
  int32_t member;
  uint32_t incarnation;
  swim::MemberState state;
};

// A node's latest view of one member, from its delegate's callbacks.
struct MemberView {
  bool known = false;
  swim::MemberState state = swim::MemberState::kAlive;
  uint32_t incarnation = 0;
  int64_t since_ms = 0;
};

// Everything one life of a node (from Add or Restart to Kill) was told.
struct Record {
  std::vector<swim::Event> events;        // OnEvent, in order
  std::vector<MemberChange> changes;      // OnMemberChange, in order
  std::vector<MemberView> view;           // by node id
  int alive_others = 0;                   // members other than itself viewed alive
  uint64_t unknown_members = 0;           // changes about names not in the cluster
  uint64_t name_conflicts = 0;
  uint64_t merges = 0, join_merges = 0;   // MergeRemoteState calls
};

class Cluster {
 public:
  explicit Cluster(ClusterOptions options);
  ~Cluster();
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  // A new node, up but not joined. `options` defaults to ClusterOptions::node;
  // an empty name or address is filled in.
  int Add();
  int Add(swim::Options options);
  // Adds `n` nodes, one every `stagger_ms` of virtual time; each joins the
  // cluster's first node and one random earlier up node. Returns the first
  // new id. Does not wait for convergence.
  int AddJoined(int n, int64_t stagger_ms);

  void Join(int id, const std::vector<int>& seeds);
  void Broadcast(int id, std::string type, std::string payload);
  void UpdateMeta(int id, std::string meta);
  void Leave(int id);  // graceful: the node keeps running (answering nothing new) until killed
  // Crash: the node stops at once; no leave, no goodbye.
  void Kill(int id);
  // A fresh swim::Node with the same name and address (and options), a new
  // seed and an empty record; not joined.
  void Restart(int id);

  // The node's life number: 0 at Add, +1 per Restart.
  int life(int id) const { return slots_[id].life; }
  bool up(int id) const { return net_.up(id); }
  int size() const { return static_cast<int>(slots_.size()); }
  int up_count() const;
  swim::Node& node(int id);               // precondition: up(id)
  const Record& record(int id) const;
  const std::string& name(int id) const { return slots_[id].options.name; }
  Network& network() { return net_; }
  const Network& network() const { return net_; }
  int64_t now() const { return net_.now(); }

  void RunFor(int64_t ms) { net_.RunFor(ms); }
  void RunUntil(int64_t t) { net_.RunUntil(t); }
  // Runs in steps of `step_ms` until `done()` or `max_ms` more have passed;
  // true if done. The check runs at step boundaries only.
  bool RunUntil(const std::function<bool()>& done, int64_t max_ms, int64_t step_ms = 100);

  // Views built from the delegates' OnMemberChange.
  const MemberView& View(int observer, int member) const;
  // Every up node sees every other up node alive and nothing else alive.
  bool Converged() const;
  // Every up node other than `member` sees `member` in `state`.
  bool AllSee(int member, swim::MemberState state) const;
  // The first time `observer` (this life) saw `member` enter `state` at or
  // after `since_ms`; -1 if never.
  int64_t FirstSeen(int observer, int member, swim::MemberState state, int64_t since_ms) const;

  // Sum over every node of bytes the protocol sent (datagrams and streams).
  uint64_t TotalBytesOut() const;

 private:
  class Recorder;
  class Endpoint;
  struct Slot {
    swim::Options options;
    int life = 0;
    std::unique_ptr<Recorder> delegate;
    std::unique_ptr<Endpoint> endpoint;   // owns the swim::Node
  };

  void Start(int id);
  int NameToId(std::string_view name) const;

  ClusterOptions options_;
  Network net_;
  std::vector<Slot> slots_;
  std::unordered_map<std::string, int, StringHash, std::equal_to<>> by_name_;
};

}  // namespace hub::cluster::sim
