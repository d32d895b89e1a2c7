#pragma once
// Node's state and the functions that change it, split by concern:
//   node.cpp   the public API, timers (Tick/NextDeadline) and input dispatch
//   state.cpp  membership transitions: alive / suspect / dead / merge / refute
//   probe.cpp  failure detection: ping, ping-req, ack, nack, TCP fallback
//   sync.cpp   dissemination: gossip rounds, push-pull, events

#include <array>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "cluster/swim/detail/awareness.h"
#include "cluster/swim/detail/broadcast_queue.h"
#include "cluster/swim/detail/codec.h"
#include "cluster/swim/detail/event_log.h"
#include "cluster/swim/detail/rng.h"
#include "cluster/swim/detail/suspicion.h"
#include "cluster/swim/node.h"

namespace hub::cluster::swim {

inline constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

struct MemberEntry {
  Member m;
  std::optional<detail::Suspicion> suspicion;  // while m.state == kSuspect
};

// The probe of one member, one probe interval long.
struct Probe {
  bool active = false;
  std::string target;
  std::string addr;
  uint32_t seq = 0;
  int64_t start = 0, timeout_at = 0, end_at = 0;
  bool indirect_sent = false;  // ping-req and TCP fallback are out
  int expected_nacks = 0, nacks = 0;
  bool tcp_ok = false;
};

// A ping this node sends on behalf of a ping-req.
struct Forward {
  std::string reply_to;
  uint32_t seq = 0;  // the requester's
  bool nack = false;
  int64_t deadline = 0;
};

struct PendingStream {
  enum class Kind : uint8_t { kPushPull, kPing, kEvents } kind;
  std::string to;
  bool join = false;
  uint32_t seq = 0;
  int64_t expires = 0;  // forgotten if the driver never answers
};

struct Node::Impl {
  Impl(Options options, Delegate* d, uint64_t seed, int64_t now);

  Options opt;
  Delegate fallback_delegate;
  Delegate* delegate;
  detail::Rng rng;
  detail::Awareness awareness;
  detail::BroadcastQueue queue;
  detail::EventLog events;
  Stats stats;
  std::vector<Output> outputs;

  uint64_t boot = 0;
  uint64_t next_event_id = 0;
  uint32_t next_seq = 0;
  uint64_t next_stream_id = 1;
  bool leaving = false;

  // Hash order is fixed for a given build and input sequence, which is all
  // determinism asks; element addresses are stable, so the roster may point in.
  std::unordered_map<std::string, MemberEntry> members;
  std::vector<MemberEntry*> roster;  // every member but self, for random picks
  std::set<std::string> suspects;
  std::unordered_map<std::string, std::string> by_addr;
  std::array<size_t, 4> counts{};  // members by state
  std::vector<std::string> probe_order;
  size_t probe_index = 0;

  Probe probe;
  std::map<uint32_t, Forward> forwards;
  std::map<uint64_t, PendingStream> streams;

  int64_t next_probe_at = 0, next_gossip_at = 0, next_push_pull_at = 0;
  int64_t next_heartbeat_at = 0, next_reap_at = 0;

  MemberEntry& self() { return members.at(opt.name); }
  // Alive and suspect members, self included: the n of the protocol's formulas.
  size_t LiveCount() const { return counts[0] + counts[1]; }
  int TransmitLimit() const { return detail::RetransmitLimit(opt.retransmit_mult, LiveCount()); }

  // node.cpp: output.
  // Sends `msgs` to `to` as one datagram with piggybacked broadcasts.
  void Send(const std::string& to, const std::vector<detail::Message>& msgs);
  void SendBytes(const std::string& to, Bytes bytes);
  void Open(PendingStream pending, Bytes bytes, int64_t timeout_ms, int64_t now);
  // Up to k members passing `keep`, in random order.
  std::vector<MemberEntry*> RandomMembers(size_t k, const std::function<bool(const MemberEntry&)>& keep);
  void Dispatch(detail::Message& m, std::string_view from, int64_t now);

  // state.cpp
  void AddSelf(int64_t now);
  void OnAlive(const detail::Alive& a, int64_t now);
  void OnSuspect(const detail::Suspect& s, int64_t now);
  void OnDead(const detail::Dead& d, int64_t now);
  void Merge(const std::vector<detail::MemberRecord>& remote, int64_t now);
  void Refute(uint32_t accused, int64_t now);
  void QueueSelfAlive(int max_transmits = 0);
  void SetState(MemberEntry& e, MemberState s, int64_t now);
  void Notify(const MemberEntry& e);
  void CheckSuspicions(int64_t now);
  void Reap(int64_t now);
  std::vector<detail::MemberRecord> Records() const;
  std::optional<int64_t> NextSuspicionDeadline() const;

  // probe.cpp
  void StartProbe(int64_t now);
  void ProbeTimeout(int64_t now);
  void EndProbe(int64_t now);
  void OnPing(const detail::Ping& p, std::string_view from, int64_t now);
  void OnPingReq(const detail::PingReq& p, std::string_view from, int64_t now);
  void OnAck(const detail::Ack& a, int64_t now);
  void OnNack(const detail::Nack& n);
  void OnStreamPingReply(const PendingStream& ps, const std::optional<Bytes>& reply);
  void CheckForwards(int64_t now);

  // sync.cpp
  void Gossip(int64_t now);
  void PushPullRound(int64_t now);
  void StartPushPull(const std::string& addr, bool join, int64_t now);
  Bytes AnswerPushPull(const detail::PushPull& p, int64_t now);
  void OnPushPullReply(const PendingStream& ps, const std::optional<Bytes>& reply, int64_t now);
  void Emit(std::string type, std::string payload, int64_t now);
  void OnEvent(const detail::WireEvent& e, int64_t now);
  void OnEvents(std::vector<detail::WireEvent> batch, int64_t now);  // catch-up, oldest first
  void Disseminate(const detail::WireEvent& e, int64_t now);
  int64_t PushPullInterval() const;
};

}  // namespace hub::cluster::swim
