// The production driver of the SWIM core (transport.h). One strand owns the
// Node, the keyring, both sockets, the wake-up timer and every TCP exchange;
// the public methods post to it. Members() and Stats() read a snapshot kept
// under a mutex, so they never wait for the strand (an HTTP handler on the
// same io_context may call them).

#include "cluster/transport.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <spdlog/spdlog.h>

#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <climits>
#include <cmath>
#include <condition_variable>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string_view>
#include <utility>

#include "core/metrics.h"

namespace hub::cluster {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using udp = asio::ip::udp;
using ErrorCode = boost::system::error_code;
using Strand = asio::strand<asio::io_context::executor_type>;
using std::chrono::milliseconds;

constexpr size_t kFrameHeader = 4;
constexpr size_t kUdpBuffer = 65'536;
// A frame body grows by this much per read, so a peer that announces a big
// frame and sends little costs little memory.
constexpr size_t kReadChunk = 64 * 1024;
constexpr size_t kMaxPendingSends = 1024;
// The timer wakes at least this often: a wall-clock jump cannot stall the
// node, and the snapshot and gauges stay fresh.
constexpr int64_t kMaxSleepMs = 1000;
constexpr int64_t kLogEveryMs = 60'000;
constexpr int kBindAttempts = 32;
constexpr int64_t kAcceptRetryMs = 100;
constexpr size_t kNumFailures = 7;
static_assert(static_cast<size_t>(OpenFailure::kTooLarge) + 1 == kNumFailures);
static_assert(std::size(TransportStats{}.rejected) == kNumFailures);

Error Misuse(std::string message) {
  return MakeError(std::make_error_code(std::errc::invalid_argument), std::move(message));
}

struct HostPort {
  std::string host;
  uint16_t port = 0;
};

// "1.2.3.4:80", "[::1]:80", "name:80", or a host alone (then default_port).
std::optional<HostPort> SplitHostPort(std::string_view s, uint16_t default_port) {
  std::string_view host = s;
  std::string_view port;
  if (!s.empty() && s.front() == '[') {
    size_t close = s.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = s.substr(1, close - 1);
    std::string_view rest = s.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':' || rest.size() == 1) return std::nullopt;
      port = rest.substr(1);
    }
  } else if (size_t colon = s.rfind(':'); colon != std::string_view::npos &&
                                          s.find(':') == colon) {
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
    if (port.empty()) return std::nullopt;
  }
  HostPort hp;
  hp.host = std::string(host);
  hp.port = default_port;
  if (!port.empty()) {
    unsigned v = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
    if (ec != std::errc() || end != port.data() + port.size() || v > 65535) return std::nullopt;
    hp.port = static_cast<uint16_t>(v);
  }
  if (hp.host.empty() || hp.port == 0) return std::nullopt;
  return hp;
}

std::string FormatAddress(const asio::ip::address& a, uint16_t port) {
  if (a.is_v6()) {
    const asio::ip::address_v6 v6 = a.to_v6();
    if (v6.is_v4_mapped()) {
      return asio::ip::make_address_v4(asio::ip::v4_mapped, v6).to_string() + ":" +
             std::to_string(port);
    }
    return "[" + v6.to_string() + "]:" + std::to_string(port);
  }
  return a.to_string() + ":" + std::to_string(port);
}

std::string FirstNonLoopbackIPv4() {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return {};
  std::string found;
  for (ifaddrs* i = list; i != nullptr && found.empty(); i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET) continue;
    if ((i->ifa_flags & IFF_UP) == 0 || (i->ifa_flags & IFF_LOOPBACK) != 0) continue;
    const auto* sin = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
    found = asio::ip::address_v4(ntohl(sin->sin_addr.s_addr)).to_string();
  }
  freeifaddrs(list);
  return found;
}

std::string Describe(OpenFailure f, uint8_t peer_version, uint8_t ours) {
  switch (f) {
    case OpenFailure::kTruncated: return "truncated";
    case OpenFailure::kNotOurs: return "not a stream-hub packet";
    case OpenFailure::kVersion:
      return "incompatible protocol version " + std::to_string(peer_version) + " (we speak " +
             std::to_string(ours) + ")";
    case OpenFailure::kLabel: return "another cluster's label (P2P_LABEL differs)";
    case OpenFailure::kKey:
      return "wrong cluster key (no key of our ring opens it, or it was altered)";
    case OpenFailure::kStale:
      return "timestamp outside the replay window (are the clocks in sync?)";
    case OpenFailure::kTooLarge: return "too large";
  }
  return "unknown";
}

void PutBigEndian32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

uint32_t GetBigEndian32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

void LogFailure(std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    spdlog::error("cluster: a transport task failed: {}", x.what());
  } catch (...) {
    spdlog::error("cluster: a transport task failed");
  }
}

}  // namespace

struct Cluster::Impl : std::enable_shared_from_this<Impl> {
  // A handler chain in flight: keeps the Impl alive and counted; Stop waits
  // until none is left.
  class Work {
   public:
    explicit Work(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) { impl_->AddWork(1); }
    Work(const Work& o) : impl_(o.impl_) { impl_->AddWork(1); }
    Work& operator=(const Work&) = delete;
    ~Work() { impl_->AddWork(-1); }
    Impl* operator->() const { return impl_.get(); }
    Impl& operator*() const { return *impl_; }

   private:
    std::shared_ptr<Impl> impl_;
  };

  // One TCP exchange (either direction) with its deadline.
  struct Stream {
    explicit Stream(const Strand& s) : socket(s), timer(s), resolver(s) {}
    tcp::socket socket;
    asio::steady_timer timer;
    tcp::resolver resolver;
    bool timed_out = false;
  };

  // Unregisters a stream on every exit path of its coroutine.
  struct StreamScope {
    Impl* impl;
    std::shared_ptr<Stream> st;
    ~StreamScope() { impl->EndStream(st); }
  };

  // Wraps the application's delegate: keeps the snapshot and the gauges in
  // step with member changes, then forwards.
  struct Forwarder final : swim::Delegate {
    Impl* impl = nullptr;
    swim::Delegate* user = nullptr;
    std::string NodeMeta(size_t limit) override { return user->NodeMeta(limit); }
    void OnEvent(const swim::Event& e) override { user->OnEvent(e); }
    std::string LocalState(bool join) override { return user->LocalState(join); }
    void MergeRemoteState(std::string_view state, bool join) override {
      user->MergeRemoteState(state, join);
    }
    void OnMemberChange(const swim::Member& m) override {
      impl->OnMemberChange(m);
      user->OnMemberChange(m);
    }
    void OnNameConflict(const swim::Member& existing, const swim::Member& other) override {
      spdlog::warn("cluster: node name '{}' is claimed by {} and {}; keeping the first",
                   existing.name, existing.address, other.address);
      user->OnNameConflict(existing, other);
    }
  };

  struct MetricRefs {
    std::array<std::atomic<int64_t>*, 4> members{};
    std::atomic<int64_t>* packets[2] = {};   // in, out
    std::atomic<int64_t>* bytes[2] = {};
    std::atomic<int64_t>* streams[2] = {};
    std::array<std::atomic<int64_t>*, kNumFailures> rejected{};
    std::atomic<int64_t>* dropped = nullptr;
    std::atomic<int64_t>* rtt_us = nullptr;
  };

  enum Dir { kIn = 0, kOut = 1 };
  enum class Phase { kNew, kRunning, kStopping, kStopped };

  Impl(asio::io_context& io_context, swim::Options o, TransportOptions t, Keyring k,
       swim::Delegate* d, Metrics* metrics)
      : io(io_context),
        strand(asio::make_strand(io_context)),
        options(std::move(o)),
        topt(std::move(t)),
        clock(topt.clock != nullptr ? topt.clock : &system_clock),
        keyring(std::move(k)),
        udp_socket(strand),
        acceptor(strand),
        timer(strand) {
    forwarder.impl = this;
    forwarder.user = d != nullptr ? d : &no_delegate;
    max_frame = options.max_stream_message +
                kEnvelopeOverhead(std::min<size_t>(topt.envelope.label.size(), 255));
    stream_env = topt.envelope;
    stream_env.max_size = max_frame;
    if (metrics != nullptr) InitMetrics(*metrics);
  }

  void InitMetrics(Metrics& reg) {
    MetricRefs r;
    for (auto s : {swim::MemberState::kAlive, swim::MemberState::kSuspect, swim::MemberState::kDead,
                   swim::MemberState::kLeft}) {
      r.members[static_cast<size_t>(s)] =
          &reg.Gauge("hub_cluster_members", {{"state", std::string(swim::ToString(s))}},
                     "Cluster members known to this node, by state (this node included).");
    }
    const char* dirs[2] = {"in", "out"};
    for (int i = 0; i < 2; ++i) {
      r.packets[i] = &reg.Counter("hub_cluster_packets_total", {{"direction", dirs[i]}},
                                  "Gossip datagrams received / sent.");
      r.bytes[i] = &reg.Counter("hub_cluster_bytes_total", {{"direction", dirs[i]}},
                                "Sealed gossip bytes received / sent (datagrams and streams).");
      r.streams[i] = &reg.Counter("hub_cluster_streams_total", {{"direction", dirs[i]}},
                                  "Gossip TCP requests served / opened.");
    }
    for (size_t i = 0; i < kNumFailures; ++i) {
      r.rejected[i] = &reg.Counter(
          "hub_cluster_rejected_total",
          {{"reason", std::string(ToString(static_cast<OpenFailure>(i)))}},
          "Gossip packets and stream frames refused (wrong key, label, version, ...).");
    }
    r.dropped = &reg.Counter("hub_cluster_dropped_total", {},
                             "Gossip messages not sent or not served (too large, send errors, "
                             "queues full).");
    r.rtt_us = &reg.Gauge("hub_cluster_probe_rtt_us", {},
                          "Mean probe round trip to alive members, microseconds.");
    metric = r;
  }

  int64_t Now() const { return clock->NowUnixMillis(); }

  // --- counters (any thread for reads; written on the strand) --------------

  void AddWork(int delta) {
    std::lock_guard lock(mu);
    work += delta;
    if (work == 0) cv.notify_all();
  }

  void CountPacket(Dir d, size_t bytes) {
    {
      std::lock_guard lock(mu);
      (d == kIn ? stats.packets_in : stats.packets_out) += 1;
      (d == kIn ? stats.bytes_in : stats.bytes_out) += bytes;
    }
    if (metric) {
      metric->packets[d]->fetch_add(1, std::memory_order_relaxed);
      metric->bytes[d]->fetch_add(static_cast<int64_t>(bytes), std::memory_order_relaxed);
    }
  }

  void CountStreamBytes(Dir d, size_t bytes) {
    {
      std::lock_guard lock(mu);
      (d == kIn ? stats.bytes_in : stats.bytes_out) += bytes;
    }
    if (metric) metric->bytes[d]->fetch_add(static_cast<int64_t>(bytes), std::memory_order_relaxed);
  }

  void CountStream(Dir d) {
    {
      std::lock_guard lock(mu);
      (d == kIn ? stats.streams_in : stats.streams_out) += 1;
    }
    if (metric) metric->streams[d]->fetch_add(1, std::memory_order_relaxed);
  }

  void Count(uint64_t TransportStats::*field) {
    std::lock_guard lock(mu);
    stats.*field += 1;
  }

  void Drop(std::string_view why, std::string_view peer) {
    Count(&TransportStats::dropped);
    if (metric) metric->dropped->fetch_add(1, std::memory_order_relaxed);
    LogLimited(drop_log, "dropped a message to/from {}: {}", peer, why);
  }

  struct LogLimit {
    int64_t last_ms = INT64_MIN;
    uint64_t suppressed = 0;
  };

  // The first occurrence per minute at warn, with how many were not logged.
  template <class... Args>
  void LogLimited(LogLimit& limit, fmt::format_string<Args...> format, Args&&... args) {
    const int64_t now = Now();
    if (limit.last_ms != INT64_MIN && now - limit.last_ms < kLogEveryMs && now >= limit.last_ms) {
      ++limit.suppressed;
      return;
    }
    std::string text = fmt::format(format, std::forward<Args>(args)...);
    if (limit.suppressed > 0) {
      spdlog::warn("cluster: {} ({} more like it in the last minute)", text, limit.suppressed);
    } else {
      spdlog::warn("cluster: {}", text);
    }
    limit.last_ms = now;
    limit.suppressed = 0;
  }

  void Reject(OpenFailure f, std::string_view peer, uint8_t peer_version, std::string_view what) {
    const auto i = static_cast<size_t>(f);
    {
      std::lock_guard lock(mu);
      stats.rejected[i] += 1;
    }
    if (metric) metric->rejected[i]->fetch_add(1, std::memory_order_relaxed);
    LogLimited(reject_log[i], "refused {} from {}: {}", what, peer,
               Describe(f, peer_version, topt.envelope.version));
  }

  // --- membership snapshot -------------------------------------------------

  // Requires mu.
  void UpdateGauges() {
    if (!metric) return;
    std::array<int64_t, 4> counts{};
    double rtt_sum = 0;
    int rtt_n = 0;
    for (const auto& [name, m] : snapshot) {
      counts[static_cast<size_t>(m.state)] += 1;
      if (!m.is_self && m.state == swim::MemberState::kAlive && m.rtt_ms >= 0) {
        rtt_sum += m.rtt_ms;
        ++rtt_n;
      }
    }
    for (size_t i = 0; i < counts.size(); ++i) metric->members[i]->store(counts[i]);
    metric->rtt_us->store(rtt_n > 0 ? std::llround(rtt_sum / rtt_n * 1000.0) : 0);
  }

  void OnMemberChange(const swim::Member& m) {
    bool state_changed = true;
    {
      std::lock_guard lock(mu);
      auto [it, added] = snapshot.try_emplace(m.name, m);
      if (!added) {
        state_changed = it->second.state != m.state;
        it->second = m;
      }
      UpdateGauges();
    }
    // Meta and incarnation changes are not worth a line each.
    if (!m.is_self && state_changed) {
      spdlog::info("cluster: {} ({}) is {}", m.name, m.address, swim::ToString(m.state));
    }
  }

  void RefreshSnapshot(int64_t now) {
    std::vector<swim::Member> members = node->Members();
    const uint64_t malformed = node->stats().malformed;
    std::lock_guard lock(mu);
    snapshot.clear();
    for (auto& m : members) {
      std::string name = m.name;
      snapshot.emplace(std::move(name), std::move(m));
    }
    stats.malformed = malformed;
    UpdateGauges();
    last_refresh_ms = now;
  }

  // --- the protocol step ---------------------------------------------------

  // Carries out what the node asks for and re-arms the timer. After every input.
  void Flush() {
    if (closed || !node) return;
    const int64_t now = Now();
    for (swim::Output& out : node->TakeOutputs()) {
      if (auto* p = std::get_if<swim::SendPacket>(&out)) {
        SendPacketOut(std::move(*p), now);
      } else {
        StartStream(std::move(std::get<swim::OpenStream>(out)));
      }
    }
    ArmTimer(now);
  }

  void ArmTimer(int64_t now) {
    const int64_t deadline = node->NextDeadline();
    const int64_t target = std::min(deadline, now + kMaxSleepMs);
    // An earlier wake-up than needed is harmless (Tick finds nothing due), so
    // the timer is only moved forward, which keeps cancellations rare.
    if (target >= armed_ms && armed_ms <= now + kMaxSleepMs) return;
    armed_ms = target;
    timer.expires_after(milliseconds(std::max<int64_t>(0, target - now)));
  }

  void OnTimer() {
    armed_ms = INT64_MAX;
    const int64_t now = Now();
    node->Tick(now);
    if (now - last_refresh_ms >= kMaxSleepMs || now < last_refresh_ms) RefreshSnapshot(now);
    Flush();
  }

  void OnDatagram(const udp::endpoint& from, const uint8_t* data, size_t size) {
    CountPacket(kIn, size);
    const std::string peer = FormatAddress(from.address(), from.port());
    const int64_t now = Now();
    OpenResult r = Open(keyring, topt.envelope, now, data, size);
    if (!r.opened) {
      Reject(r.failure, peer, r.peer_version, "a datagram");
      return;
    }
    node->HandlePacket(peer, r.opened->plain.data(), r.opened->plain.size(), now);
    Flush();
  }

  // A v4 destination from a socket bound to :: goes as a v4-mapped address.
  udp::endpoint UdpEndpoint(const asio::ip::address& a, uint16_t port) const {
    if (v6 && a.is_v4()) {
      return udp::endpoint(asio::ip::make_address_v6(asio::ip::v4_mapped, a.to_v4()), port);
    }
    return udp::endpoint(a, port);
  }

  void SendPacketOut(swim::SendPacket p, int64_t now) {
    auto sealed = std::make_shared<std::vector<uint8_t>>(
        Seal(keyring, topt.envelope, now, p.bytes.data(), p.bytes.size()));
    if (sealed->size() > topt.max_datagram) {
      Drop("a " + std::to_string(sealed->size()) + "-byte datagram exceeds max_datagram", p.to);
      return;
    }
    std::optional<HostPort> hp = SplitHostPort(p.to, port.load());
    if (!hp) {
      Drop("not a host:port address", p.to);
      return;
    }
    ErrorCode ec;
    const asio::ip::address addr = asio::ip::make_address(hp->host, ec);
    if (!ec) {
      SendDatagram(UdpEndpoint(addr, hp->port), std::move(sealed), p.to);
      return;
    }
    // A name (a seed given as host:port): resolved each time; members
    // advertise IP addresses, so this is rare. Stop does not wait for it.
    auto resolver = std::make_shared<udp::resolver>(strand);
    std::weak_ptr<Impl> weak = weak_from_this();
    resolver->async_resolve(
        hp->host, std::to_string(hp->port),
        [weak, resolver, sealed, to = std::move(p.to)](const ErrorCode& rec,
                                                       const udp::resolver::results_type& results) {
          std::shared_ptr<Impl> self = weak.lock();
          if (!self || self->closed) return;
          for (const auto& entry : results) {
            if (rec) break;
            const udp::endpoint& ep = entry.endpoint();
            if (ep.address().is_v4() || self->v6) {
              self->SendDatagram(self->UdpEndpoint(ep.address(), ep.port()), sealed, to);
              return;
            }
          }
          self->Drop("cannot resolve the name", to);
        });
  }

  void SendDatagram(const udp::endpoint& to, std::shared_ptr<std::vector<uint8_t>> data,
                    const std::string& peer) {
    if (pending_sends >= kMaxPendingSends) {
      Drop("the send queue is full", peer);
      return;
    }
    ++pending_sends;
    const asio::const_buffer buffer = asio::buffer(*data);
    udp_socket.async_send_to(
        buffer, to,
        [w = Work(shared_from_this()), data = std::move(data), peer](const ErrorCode& ec,
                                                                      size_t n) {
          --w->pending_sends;
          if (w->closed) return;
          if (ec) {
            w->Drop("send failed: " + ec.message(), peer);
            return;
          }
          w->CountPacket(kOut, n);
          if (w->leaving && ++w->sent_since_leave >= w->leave_target) w->SignalLeaveSent();
        });
  }

  // --- streams --------------------------------------------------------------

  std::shared_ptr<Stream> NewStream(int64_t timeout_ms) {
    auto st = std::make_shared<Stream>(strand);
    streams.insert(st);
    st->timer.expires_after(milliseconds(std::max<int64_t>(timeout_ms, 1)));
    st->timer.async_wait([weak = std::weak_ptr<Stream>(st)](const ErrorCode& ec) {
      std::shared_ptr<Stream> s = weak.lock();
      if (ec || !s) return;
      s->timed_out = true;
      s->resolver.cancel();
      ErrorCode ignored;
      s->socket.close(ignored);
    });
    return st;
  }

  void EndStream(const std::shared_ptr<Stream>& st) {
    if (st->timed_out) Count(&TransportStats::timeouts);
    st->timer.cancel();
    st->resolver.cancel();
    ErrorCode ignored;
    st->socket.close(ignored);
    streams.erase(st);
  }

  // Reads one frame (header + body) within the stream's deadline. False when
  // the peer closed, the deadline passed or the frame is over the limit
  // (counted as kTooLarge); an empty `out` is a zero-length frame.
  asio::awaitable<bool> ReadFrame(Stream& st, std::vector<uint8_t>& out, const std::string& peer) {
    ErrorCode ec;
    std::array<uint8_t, kFrameHeader> header{};
    co_await asio::async_read(st.socket, asio::buffer(header),
                              asio::redirect_error(asio::use_awaitable, ec));
    if (ec || closed) co_return false;
    const uint32_t size = GetBigEndian32(header.data());
    if (size > max_frame) {
      Reject(OpenFailure::kTooLarge, peer, 0,
             "a " + std::to_string(size) + "-byte stream frame (limit " +
                 std::to_string(max_frame) + ")");
      co_return false;
    }
    out.clear();
    while (out.size() < size) {
      const size_t have = out.size();
      out.resize(std::min<size_t>(size, have + kReadChunk));
      const asio::mutable_buffer chunk = asio::buffer(out.data() + have, out.size() - have);
      co_await asio::async_read(st.socket, chunk, asio::redirect_error(asio::use_awaitable, ec));
      if (ec || closed) co_return false;
      if (have == 0) {
        // Another program, protocol version or cluster: refused before its
        // body is buffered (the key is only known after the whole frame).
        if (auto f = PeekHeader(stream_env, out.data(), out.size())) {
          Reject(*f, peer, out.size() >= 3 ? out[2] : 0, "a stream frame");
          co_return false;
        }
      }
    }
    CountStreamBytes(kIn, kFrameHeader + size);
    co_return true;
  }

  asio::awaitable<bool> WriteFrame(Stream& st, const std::vector<uint8_t>& body) {
    std::array<uint8_t, kFrameHeader> header{};
    PutBigEndian32(header.data(), static_cast<uint32_t>(body.size()));
    const std::array<asio::const_buffer, 2> buffers = {asio::buffer(header), asio::buffer(body)};
    ErrorCode ec;
    co_await asio::async_write(st.socket, buffers, asio::redirect_error(asio::use_awaitable, ec));
    if (ec || closed) co_return false;
    CountStreamBytes(kOut, kFrameHeader + body.size());
    co_return true;
  }

  void StartStream(swim::OpenStream o) {
    CountStream(kOut);
    asio::co_spawn(strand, StreamOut(Work(shared_from_this()), std::move(o)),
                   [](std::exception_ptr e) { LogFailure(e); });
  }

  static asio::awaitable<void> StreamOut(Work w, swim::OpenStream o) {
    std::optional<swim::Bytes> reply = co_await w->Exchange(o);
    if (w->closed) co_return;
    if (!reply) w->Count(&TransportStats::streams_failed);
    w->node->HandleStreamReply(o.id, std::move(reply), w->Now());
    w->Flush();
  }

  // Our request: connect, send one frame, read one reply frame, all within
  // o.timeout_ms. nullopt on any failure.
  asio::awaitable<std::optional<swim::Bytes>> Exchange(const swim::OpenStream& o) {
    std::optional<HostPort> hp = SplitHostPort(o.to, port.load());
    if (!hp) {
      Drop("not a host:port address", o.to);
      co_return std::nullopt;
    }
    StreamScope scope{this, NewStream(o.timeout_ms)};
    Stream& st = *scope.st;
    ErrorCode ec;
    const asio::ip::address addr = asio::ip::make_address(hp->host, ec);
    if (!ec) {
      const tcp::endpoint endpoint(addr, hp->port);
      co_await st.socket.async_connect(endpoint, asio::redirect_error(asio::use_awaitable, ec));
    } else {
      const std::string service = std::to_string(hp->port);
      ec.clear();
      tcp::resolver::results_type results = co_await st.resolver.async_resolve(
          hp->host, service, asio::redirect_error(asio::use_awaitable, ec));
      if (!ec && !closed) {
        co_await asio::async_connect(st.socket, results,
                                     asio::redirect_error(asio::use_awaitable, ec));
      }
    }
    if (ec || closed) co_return std::nullopt;

    std::vector<uint8_t> sealed = Seal(keyring, stream_env, Now(), o.bytes.data(), o.bytes.size());
    if (sealed.size() > max_frame) {
      Drop("a " + std::to_string(sealed.size()) + "-byte stream message exceeds the limit", o.to);
      co_return std::nullopt;
    }
    bool ok = co_await WriteFrame(st, sealed);
    if (!ok) co_return std::nullopt;
    std::vector<uint8_t> in;
    ok = co_await ReadFrame(st, in, o.to);
    if (!ok) co_return std::nullopt;
    if (in.empty()) co_return swim::Bytes{};
    OpenResult r = Open(keyring, stream_env, Now(), in.data(), in.size());
    if (!r.opened) {
      Reject(r.failure, o.to, r.peer_version, "a stream reply");
      co_return std::nullopt;
    }
    co_return std::move(r.opened->plain);
  }

  static asio::awaitable<void> StreamIn(Work w, tcp::socket socket) {
    co_await w->Serve(std::move(socket));
  }

  // A peer's request: one frame in, one frame out (zero length: no reply),
  // all within stream_timeout_ms.
  asio::awaitable<void> Serve(tcp::socket socket) {
    StreamScope scope{this, NewStream(topt.stream_timeout_ms)};
    Stream& st = *scope.st;
    st.socket = std::move(socket);
    ErrorCode ec;
    const tcp::endpoint remote = st.socket.remote_endpoint(ec);
    const std::string peer = ec ? std::string("?") : FormatAddress(remote.address(), remote.port());
    std::vector<uint8_t> in;
    const bool ok = co_await ReadFrame(st, in, peer);
    if (!ok) co_return;
    CountStream(kIn);
    if (in.empty()) {
      Reject(OpenFailure::kTruncated, peer, 0, "an empty stream request");
      co_return;
    }
    const int64_t now = Now();
    OpenResult r = Open(keyring, stream_env, now, in.data(), in.size());
    if (!r.opened) {
      Reject(r.failure, peer, r.peer_version, "a stream");
      co_return;
    }
    const swim::Bytes reply =
        node->HandleStream(peer, r.opened->plain.data(), r.opened->plain.size(), now);
    Flush();
    std::vector<uint8_t> sealed;
    if (!reply.empty()) sealed = Seal(keyring, stream_env, Now(), reply.data(), reply.size());
    if (sealed.size() > max_frame) {
      Drop("a " + std::to_string(sealed.size()) + "-byte stream reply exceeds the limit", peer);
      co_return;
    }
    const bool written = co_await WriteFrame(st, sealed);
    if (written) st.socket.shutdown(tcp::socket::shutdown_send, ec);
  }

  // --- long-running loops ---------------------------------------------------

  static asio::awaitable<void> UdpLoop(Work w) {
    std::vector<uint8_t> buffer(kUdpBuffer);
    udp::endpoint from;
    for (;;) {
      ErrorCode ec;
      const size_t n = co_await w->udp_socket.async_receive_from(
          asio::buffer(buffer), from, asio::redirect_error(asio::use_awaitable, ec));
      if (w->closed) co_return;
      if (ec) {
        if (ec == asio::error::operation_aborted || !w->udp_socket.is_open()) co_return;
        continue;  // e.g. a reported ICMP error: not about this socket
      }
      w->OnDatagram(from, buffer.data(), n);
    }
  }

  static asio::awaitable<void> AcceptLoop(Work w) {
    for (;;) {
      ErrorCode ec;
      tcp::socket socket(w->strand);
      co_await w->acceptor.async_accept(socket, asio::redirect_error(asio::use_awaitable, ec));
      if (w->closed) co_return;
      if (ec) {
        if (ec == asio::error::operation_aborted || !w->acceptor.is_open()) co_return;
        // E.g. out of file descriptors: pause instead of spinning.
        asio::steady_timer pause(w->strand, milliseconds(kAcceptRetryMs));
        co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        continue;
      }
      if (w->streams.size() >= w->topt.max_inbound_streams) {
        const tcp::endpoint remote = socket.remote_endpoint(ec);
        w->Drop("too many concurrent streams",
                ec ? std::string("?") : FormatAddress(remote.address(), remote.port()));
        continue;
      }
      asio::co_spawn(w->strand, StreamIn(w, std::move(socket)),
                     [](std::exception_ptr e) { LogFailure(e); });
    }
  }

  static asio::awaitable<void> TimerLoop(Work w) {
    for (;;) {
      ErrorCode ec;
      co_await w->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (w->closed) co_return;
      if (ec == asio::error::operation_aborted) continue;  // moved earlier by ArmTimer
      w->OnTimer();
    }
  }

  // --- start ----------------------------------------------------------------

  Result<void> Bind(const asio::ip::address& addr) {
    const int attempts = topt.port == 0 ? kBindAttempts : 1;
    for (int attempt = 0; attempt < attempts; ++attempt) {
      ErrorCode ec;
      const tcp::endpoint tcp_ep(addr, topt.port);
      acceptor.open(tcp_ep.protocol(), ec);
      if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
      if (!ec) acceptor.bind(tcp_ep, ec);
      if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
      if (ec) {
        ErrorCode ignored;
        acceptor.close(ignored);
        return BindError("TCP", topt.port, ec);
      }
      const uint16_t bound = acceptor.local_endpoint(ec).port();
      const udp::endpoint udp_ep(addr, bound);
      udp_socket.open(udp_ep.protocol(), ec);
      if (!ec) udp_socket.bind(udp_ep, ec);
      if (!ec) {
        port = bound;
        v6 = addr.is_v6();
        return Ok();
      }
      ErrorCode ignored;
      udp_socket.close(ignored);
      acceptor.close(ignored);
      // Port 0: the kernel picked a TCP port whose UDP twin is taken; try another.
      if (topt.port == 0 && ec == asio::error::address_in_use) continue;
      return BindError("UDP", bound, ec);
    }
    return MakeError(std::make_error_code(std::errc::address_in_use),
                     "cannot find a port free for both TCP and UDP on " + topt.bind);
  }

  Error BindError(std::string_view proto, uint16_t p, const ErrorCode& ec) const {
    std::string where = topt.bind + ":" + std::to_string(p);
    std::string hint;
    if (ec == asio::error::address_in_use) {
      hint = "; another process (another stream-hub?) uses it: stop it or choose another P2P_PORT";
    } else if (ec == boost::system::errc::address_not_available) {
      hint = "; P2P_BIND must be an address of this host (or 0.0.0.0)";
    } else if (ec == asio::error::access_denied) {
      hint = "; ports below 1024 need privileges: choose another P2P_PORT";
    }
    return MakeError(std::error_code(ec.value(), std::generic_category()),
                     "cannot bind the cluster's " + std::string(proto) + " socket to " + where +
                         ": " + ec.message() + hint);
  }

  std::string AdvertiseAddress(const asio::ip::address& bind_addr) const {
    std::string host = topt.advertise_host;
    if (host.empty() && !bind_addr.is_unspecified()) host = bind_addr.to_string();
    if (host.empty()) host = FirstNonLoopbackIPv4();
    if (host.empty()) host = "127.0.0.1";
    if (host.find(':') != std::string::npos && host.front() != '[') host = "[" + host + "]";
    return host + ":" + std::to_string(port.load());
  }

  Result<void> Start() {
    {
      std::lock_guard lock(mu);
      if (phase != Phase::kNew) return Misuse("the cluster was already started");
    }
    if (options.name.empty()) return Misuse("the node needs a name (P2P_NODE_NAME)");
    if (keyring.empty()) {
      return Misuse(
          "no cluster key: set P2P_CLUSTER_KEY or P2P_KEYRING_FILE "
          "(`stream-hub keygen` prints one)");
    }
    HUB_TRY(CheckOptions(topt.envelope));
    ErrorCode ec;
    const asio::ip::address bind_addr = asio::ip::make_address(topt.bind, ec);
    if (ec) return Misuse("P2P_BIND '" + topt.bind + "' is not an IP address");
    HUB_TRY(Bind(bind_addr));
    options.address = AdvertiseAddress(bind_addr);
    const int64_t now = Now();
    {
      std::lock_guard lock(mu);
      address = options.address;
      phase = Phase::kRunning;
      swim::Member self;
      self.name = options.name;
      self.address = options.address;
      self.state_since_ms = now;
      self.protocol = options.protocol;
      self.is_self = true;
      snapshot[self.name] = self;
    }
    spdlog::info("cluster: node '{}' listening on {}:{} (UDP and TCP), advertising {}",
                 options.name, topt.bind, port.load(), options.address);
    asio::post(strand, [w = Work(shared_from_this())] { w->Begin(); });
    return Ok();
  }

  // On the strand, so the delegate's first calls (from the Node's
  // constructor) run there too.
  void Begin() {
    if (closed) return;
    std::random_device rd;
    const uint64_t seed = (uint64_t{rd()} << 32) ^ rd();
    node = std::make_unique<swim::Node>(options, &forwarder, seed, Now());
    RefreshSnapshot(Now());
    Flush();
    auto log = [](std::exception_ptr e) { LogFailure(e); };
    asio::co_spawn(strand, UdpLoop(Work(shared_from_this())), log);
    asio::co_spawn(strand, AcceptLoop(Work(shared_from_this())), log);
    asio::co_spawn(strand, TimerLoop(Work(shared_from_this())), log);
  }

  // Runs `f(impl)` on the strand, then Flush; ignored before Start and after Stop.
  template <class F>
  void Post(F f) {
    asio::post(strand, [w = Work(shared_from_this()), f = std::move(f)]() mutable {
      if (w->closed || !w->node) return;
      f(*w);
      w->Flush();
    });
  }

  // --- stop -----------------------------------------------------------------

  void SignalLeaveSent() {
    leaving = false;
    {
      std::lock_guard lock(mu);
      leave_sent = true;
    }
    cv.notify_all();
  }

  void BeginLeave() {
    if (closed || !node) {
      SignalLeaveSent();
      return;
    }
    size_t others = 0;
    for (const swim::Member& m : node->Members()) {
      if (!m.is_self && m.state == swim::MemberState::kAlive) ++others;
    }
    const auto fanout = static_cast<uint64_t>(std::max(options.gossip_nodes, 1));
    leave_target = std::min<uint64_t>(others, fanout);
    sent_since_leave = 0;
    leaving = leave_target > 0;
    node->Leave(Now());
    Flush();
    RefreshSnapshot(Now());
    if (leave_target == 0) SignalLeaveSent();
  }

  void Close() {
    if (!closed.exchange(true)) {
      ErrorCode ignored;
      udp_socket.close(ignored);
      acceptor.close(ignored);
      timer.cancel();
      for (const std::shared_ptr<Stream>& st : streams) {
        st->timer.cancel();
        st->resolver.cancel();
        st->socket.close(ignored);
      }
      leaving = false;
    }
    {
      std::lock_guard lock(mu);
      close_done = true;
    }
    cv.notify_all();
  }

  void Stop() {
    std::lock_guard stop_lock(stop_mu);
    {
      std::lock_guard lock(mu);
      if (phase == Phase::kStopped || phase == Phase::kStopping) return;
      if (phase == Phase::kNew) {
        phase = Phase::kStopped;
        return;
      }
      phase = Phase::kStopping;
    }
    auto self = shared_from_this();
    if (io.get_executor().running_in_this_thread()) {
      // Waiting here would block the thread that must run the handlers.
      asio::post(strand, [self] {
        self->BeginLeave();
        self->Close();
      });
      std::lock_guard lock(mu);
      phase = Phase::kStopped;
      return;
    }
    asio::post(strand, [self] { self->BeginLeave(); });
    std::unique_lock lock(mu);
    using SteadyClock = std::chrono::steady_clock;
    const auto leave_deadline =
        SteadyClock::now() + milliseconds(std::max<int64_t>(topt.leave_timeout_ms, 0));
    // Polls io.stopped(): nobody would signal the leave then.
    while (!leave_sent && !io.stopped() && SteadyClock::now() < leave_deadline) {
      cv.wait_until(lock, std::min(leave_deadline, SteadyClock::now() + milliseconds(100)));
    }
    lock.unlock();
    asio::post(strand, [self] { self->Close(); });
    lock.lock();
    while (!(close_done && work == 0)) {
      if (io.stopped()) break;
      cv.wait_for(lock, milliseconds(100));
    }
    const bool closed_by_strand = close_done;
    lock.unlock();
    // Nobody runs the io_context: no handler can run now; close here. The
    // queued handlers are destroyed with the io_context.
    if (!closed_by_strand) Close();
    lock.lock();
    phase = Phase::kStopped;
  }

  // --- state ----------------------------------------------------------------

  asio::io_context& io;
  Strand strand;
  swim::Options options;
  TransportOptions topt;
  SystemClock system_clock;
  const Clock* clock;
  size_t max_frame = 0;
  EnvelopeOptions stream_env;  // topt.envelope with max_size = max_frame
  swim::Delegate no_delegate;
  Forwarder forwarder;
  std::optional<MetricRefs> metric;
  std::atomic<uint16_t> port{0};
  bool v6 = false;             // set by Start before any handler runs

  // On the strand only.
  Keyring keyring;
  std::unique_ptr<swim::Node> node;
  udp::socket udp_socket;
  tcp::acceptor acceptor;
  asio::steady_timer timer;
  int64_t armed_ms = INT64_MAX;
  int64_t last_refresh_ms = 0;
  size_t pending_sends = 0;
  std::set<std::shared_ptr<Stream>> streams;
  std::array<LogLimit, kNumFailures> reject_log;
  LogLimit drop_log;
  bool leaving = false;
  uint64_t sent_since_leave = 0;
  uint64_t leave_target = 0;
  std::atomic<bool> closed{false};   // set on the strand (or by Stop when nothing runs)

  // Guarded by mu.
  mutable std::mutex mu;
  std::condition_variable cv;
  TransportStats stats;
  std::map<std::string, swim::Member> snapshot;
  std::string address;
  Phase phase = Phase::kNew;
  bool leave_sent = false;
  bool close_done = false;
  int work = 0;

  std::mutex stop_mu;  // one Stop at a time
};

Cluster::Cluster(boost::asio::io_context& io, swim::Options options, TransportOptions transport,
                 Keyring keyring, swim::Delegate* delegate, Metrics* metrics)
    : impl_(std::make_shared<Impl>(io, std::move(options), std::move(transport),
                                   std::move(keyring), delegate, metrics)) {}

Cluster::~Cluster() { impl_->Stop(); }

Result<void> Cluster::Start() { return impl_->Start(); }

uint16_t Cluster::port() const { return impl_->port.load(); }

std::string Cluster::address() const {
  std::lock_guard lock(impl_->mu);
  return impl_->address;
}

void Cluster::Join(std::vector<std::string> addresses) {
  impl_->Post([addresses = std::move(addresses)](Impl& i) { i.node->Join(addresses, i.Now()); });
}

void Cluster::Broadcast(std::string type, std::string payload) {
  impl_->Post([type = std::move(type), payload = std::move(payload)](Impl& i) mutable {
    i.node->Broadcast(std::move(type), std::move(payload), i.Now());
  });
}

void Cluster::UpdateMeta() {
  impl_->Post([](Impl& i) { i.node->UpdateMeta(i.Now()); });
}

void Cluster::SetKeyring(Keyring keyring) {
  if (keyring.empty()) {
    spdlog::error("cluster: refusing an empty keyring (the cluster would be unreadable)");
    return;
  }
  impl_->Post([keyring = std::move(keyring)](Impl& i) mutable { i.keyring = std::move(keyring); });
}

std::vector<swim::Member> Cluster::Members() const {
  std::lock_guard lock(impl_->mu);
  std::vector<swim::Member> out;
  out.reserve(impl_->snapshot.size());
  for (const auto& [name, m] : impl_->snapshot) out.push_back(m);
  return out;
}

TransportStats Cluster::Stats() const {
  std::lock_guard lock(impl_->mu);
  return impl_->stats;
}

void Cluster::Stop() { impl_->Stop(); }

}  // namespace hub::cluster
