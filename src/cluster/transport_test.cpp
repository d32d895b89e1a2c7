#include "cluster/transport.h"

#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/metrics.h"

namespace hub::cluster {
namespace {

namespace asio = boost::asio;
using swim::MemberState;
using namespace std::chrono_literals;

// Polls `pred` until it holds or `limit` passes (generous: the machine is shared).
bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds limit = 60s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

Key TestKey(uint8_t fill) {
  Key k;
  k.fill(fill);
  return k;
}

swim::Options FastOptions(const std::string& name) {
  swim::Options o = swim::Options::Local();
  o.name = name;
  o.push_pull_interval_ms = 1'000;
  o.heartbeat_interval_ms = 1'000;
  return o;
}

TransportOptions Loopback() {
  TransportOptions t;
  t.bind = "127.0.0.1";
  t.port = 0;
  t.stream_timeout_ms = 2'000;
  t.leave_timeout_ms = 2'000;
  return t;
}

// Records every delegate callback.
class Recorder : public swim::Delegate {
 public:
  std::string LocalState(bool) override {
    std::lock_guard lock(mu_);
    return local_state_;
  }
  void MergeRemoteState(std::string_view state, bool) override {
    std::lock_guard lock(mu_);
    merged_.emplace_back(state);
  }
  void OnEvent(const swim::Event& e) override {
    std::lock_guard lock(mu_);
    events_.push_back(e);
  }
  void OnMemberChange(const swim::Member& m) override {
    std::lock_guard lock(mu_);
    changes_.push_back(m);
  }

  void set_local_state(std::string s) {
    std::lock_guard lock(mu_);
    local_state_ = std::move(s);
  }
  bool Merged(const std::string& state) const {
    std::lock_guard lock(mu_);
    for (const auto& m : merged_) {
      if (m == state) return true;
    }
    return false;
  }
  std::vector<swim::Event> Events(const std::string& type) const {
    std::lock_guard lock(mu_);
    std::vector<swim::Event> out;
    for (const auto& e : events_) {
      if (e.type == type) out.push_back(e);
    }
    return out;
  }
  std::vector<MemberState> History(const std::string& name) const {
    std::lock_guard lock(mu_);
    std::vector<MemberState> out;
    for (const auto& m : changes_) {
      if (m.name == name) out.push_back(m.state);
    }
    return out;
  }
  size_t NumChanges() const {
    std::lock_guard lock(mu_);
    return changes_.size();
  }
  // Changes after the first `from` ones that put someone in a state other than alive.
  std::vector<std::string> NotAliveSince(size_t from) const {
    std::lock_guard lock(mu_);
    std::vector<std::string> out;
    for (size_t i = from; i < changes_.size(); ++i) {
      if (changes_[i].state != MemberState::kAlive) {
        out.push_back(changes_[i].name + " " + std::string(swim::ToString(changes_[i].state)));
      }
    }
    return out;
  }

 private:
  mutable std::mutex mu_;
  std::string local_state_;
  std::vector<std::string> merged_;
  std::vector<swim::Event> events_;
  std::vector<swim::Member> changes_;
};

// One cluster node with its own io_context run by `threads` threads.
class Peer {
 public:
  Peer(const std::string& name, Keyring ring, TransportOptions t = Loopback(),
       Metrics* metrics = nullptr, int threads = 1)
      : Peer(FastOptions(name), std::move(ring), std::move(t), metrics, threads) {}
  Peer(swim::Options o, Keyring ring, TransportOptions t, Metrics* metrics, int threads)
      : name_(o.name),
        cluster_(std::make_unique<Cluster>(io_, std::move(o), std::move(t), std::move(ring), &rec_,
                                           metrics)) {
    auto started = cluster_->Start();
    EXPECT_TRUE(started.ok()) << (started.ok() ? "" : started.error().message);
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { io_.run(); });
  }
  ~Peer() { Stop(); }

  void Stop() {
    cluster_->Stop();
    work_.reset();
    io_.stop();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

  Cluster& cluster() { return *cluster_; }
  void Post(std::function<void()> f) { asio::post(io_, std::move(f)); }
  Recorder& rec() { return rec_; }
  const Recorder& rec() const { return rec_; }
  const std::string& name() const { return name_; }
  std::string address() const { return cluster_->address(); }
  TransportStats stats() const { return cluster_->Stats(); }

  std::optional<MemberState> StateOf(const std::string& name) const {
    for (const auto& m : cluster_->Members()) {
      if (m.name == name) return m.state;
    }
    return std::nullopt;
  }
  size_t NumAlive() const {
    size_t n = 0;
    for (const auto& m : cluster_->Members()) n += m.state == MemberState::kAlive;
    return n;
  }
  std::string Describe() const {
    std::string out = name_ + " sees:";
    for (const auto& m : cluster_->Members()) {
      out += " " + m.name + "=" + std::string(swim::ToString(m.state));
    }
    return out;
  }

 private:
  std::string name_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_{io_.get_executor()};
  Recorder rec_;
  std::unique_ptr<Cluster> cluster_;
  std::vector<std::thread> threads_;
};

bool AllSeeAlive(const std::vector<Peer*>& peers, size_t n) {
  for (Peer* p : peers) {
    if (p->NumAlive() != n) return false;
  }
  return true;
}

std::string DescribeAll(const std::vector<Peer*>& peers) {
  std::string out;
  for (Peer* p : peers) out += p->Describe() + "\n";
  return out;
}

uint64_t TotalRejected(const TransportStats& s) {
  uint64_t n = 0;
  for (uint64_t r : s.rejected) n += r;
  return n;
}

uint64_t Rejected(const Peer& p, OpenFailure f) {
  return p.stats().rejected[static_cast<size_t>(f)];
}

// Waits until every peer has received `n` more datagrams than now.
bool WaitForTraffic(const std::vector<Peer*>& peers, uint64_t n) {
  std::vector<uint64_t> start;
  for (Peer* p : peers) start.push_back(p->stats().packets_in);
  return WaitFor([&] {
    for (size_t i = 0; i < peers.size(); ++i) {
      if (peers[i]->stats().packets_in < start[i] + n) return false;
    }
    return true;
  });
}

uint16_t PortOf(const std::string& address) {
  return static_cast<uint16_t>(std::stoi(address.substr(address.rfind(':') + 1)));
}

// --- raw sockets for bad input ----------------------------------------------

void SendDatagram(uint16_t port, const std::vector<uint8_t>& data) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(sendto(fd, data.data(), data.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to),
            static_cast<ssize_t>(data.size()));
  close(fd);
}

class TcpClient {
 public:
  explicit TcpClient(uint16_t port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0;
  }
  ~TcpClient() { close(fd_); }
  bool connected() const { return connected_; }
  bool Send(const std::vector<uint8_t>& data) {
    return send(fd_, data.data(), data.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(data.size());
  }
  // True when the server closes the connection (EOF or reset) within `limit`;
  // counts what it sent before.
  bool WaitClosed(std::chrono::milliseconds limit, size_t* received = nullptr) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    size_t total = 0;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char buf[4096];
      ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        if (received != nullptr) *received = total;
        return true;
      }
      total += static_cast<size_t>(n);
    }
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

std::vector<uint8_t> Frame(uint32_t length, const std::vector<uint8_t>& body) {
  // Sized once (GCC 12 at -O2 warns falsely about insert() after a 4-byte vector).
  std::vector<uint8_t> out(4 + body.size());
  for (int i = 0; i < 4; ++i) out[i] = static_cast<uint8_t>(length >> (24 - 8 * i));
  std::copy(body.begin(), body.end(), out.begin() + 4);
  return out;
}

// --- tests ------------------------------------------------------------------

TEST(Transport, ThreeNodesJoinAndSeeEachOtherAlive) {
  Metrics metrics;
  const Keyring ring(TestKey(1));
  Peer a("a", ring, Loopback(), &metrics, 2);
  Peer b("b", ring, Loopback(), nullptr, 2);
  Peer c("c", ring, Loopback(), nullptr, 2);
  EXPECT_EQ(a.address(), "127.0.0.1:" + std::to_string(a.cluster().port()));
  EXPECT_NE(a.cluster().port(), 0);
  EXPECT_NE(a.cluster().port(), b.cluster().port());

  b.cluster().Join({a.address()});
  c.cluster().Join({a.address()});
  EXPECT_TRUE(WaitFor([&] { return AllSeeAlive({&a, &b, &c}, 3); })) << DescribeAll({&a, &b, &c});

  for (const auto& m : b.cluster().Members()) {
    if (m.name == "a") {
      EXPECT_EQ(m.address, a.address());
    }
    EXPECT_EQ(m.is_self, m.name == "b");
  }
  // Probes go both ways over UDP; the joins went over TCP.
  EXPECT_TRUE(WaitForTraffic({&a, &b, &c}, 2));
  const TransportStats sa = a.stats();
  EXPECT_GT(sa.packets_out, 0u);
  EXPECT_GT(sa.bytes_in, 0u);
  EXPECT_GE(sa.streams_in, 2u);  // the two joins
  EXPECT_EQ(TotalRejected(sa), 0u);

  EXPECT_TRUE(WaitFor([&] {
    return metrics.Render().find("hub_cluster_members{state=\"alive\"} 3\n") != std::string::npos;
  })) << metrics.Render();
  const std::string text = metrics.Render();
  EXPECT_NE(text.find("hub_cluster_packets_total{direction=\"in\"}"), std::string::npos);
  EXPECT_NE(text.find("hub_cluster_rejected_total{reason=\"key\"} 0"), std::string::npos);
  EXPECT_NE(text.find("hub_cluster_probe_rtt_us"), std::string::npos);
  EXPECT_EQ(text.find("hub_cluster_packets_total{direction=\"in\"} 0\n"), std::string::npos);
}

TEST(Transport, JoinsByHostName) {
  const Keyring ring(TestKey(1));
  Peer a("a", ring);
  Peer b("b", ring);
  b.cluster().Join({"localhost:" + std::to_string(a.cluster().port())});
  EXPECT_TRUE(WaitFor([&] { return AllSeeAlive({&a, &b}, 2); })) << DescribeAll({&a, &b});
}

TEST(Transport, StopLeavesGracefully) {
  const Keyring ring(TestKey(1));
  Peer a("a", ring);
  Peer b("b", ring);
  auto c = std::make_unique<Peer>("c", ring);
  b.cluster().Join({a.address()});
  c->cluster().Join({a.address()});
  ASSERT_TRUE(WaitFor([&] { return AllSeeAlive({&a, &b, c.get()}, 3); }))
      << DescribeAll({&a, &b, c.get()});

  c->cluster().Stop();
  const size_t changes_after_stop = c->rec().NumChanges();
  auto left = [](const Peer& p) {
    const auto h = p.rec().History("c");
    return p.StateOf("c") == MemberState::kLeft && !h.empty() && h.back() == MemberState::kLeft;
  };
  EXPECT_TRUE(WaitFor([&] { return left(a) && left(b); })) << DescribeAll({&a, &b});
  for (Peer* p : {&a, &b}) {
    for (MemberState s : p->rec().History("c")) EXPECT_NE(s, MemberState::kDead);
  }
  c->cluster().Stop();  // idempotent
  // Nothing reaches the stopped node's delegate any more, although the others
  // keep talking.
  EXPECT_TRUE(WaitForTraffic({&a, &b}, 4));
  EXPECT_EQ(c->rec().NumChanges(), changes_after_stop);
  c.reset();
  EXPECT_EQ(a.NumAlive(), 2u);
}

TEST(Transport, StopFromAnIoThreadDoesNotWait) {
  const Keyring ring(TestKey(1));
  Peer a("a", ring);
  Peer b("b", ring);
  b.cluster().Join({a.address()});
  ASSERT_TRUE(WaitFor([&] { return AllSeeAlive({&a, &b}, 2); })) << DescribeAll({&a, &b});
  std::atomic<bool> returned{false};
  a.Post([&] {
    a.cluster().Stop();
    returned = true;
  });
  EXPECT_TRUE(WaitFor([&] { return returned.load(); }));
  // The leave went out in the same step (best effort, but loopback keeps it).
  EXPECT_TRUE(WaitFor([&] { return b.StateOf("a") == MemberState::kLeft; })) << b.Describe();
}

// The victim runs in a child process so it can die without a word.
[[noreturn]] void RunVictim(int report_fd) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  asio::io_context io;
  Cluster victim(io, FastOptions("victim"), Loopback(), Keyring(TestKey(1)), nullptr, nullptr);
  if (!victim.Start().ok()) _exit(2);
  const uint16_t port = victim.port();
  if (write(report_fd, &port, sizeof port) != sizeof port) _exit(3);
  auto work = asio::make_work_guard(io);
  io.run();
  _exit(0);
}

TEST(Transport, KilledNodeIsSuspectedThenDead) {
  // Forked before this test starts any thread.
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    RunVictim(fds[1]);
  }
  close(fds[1]);
  uint16_t victim_port = 0;
  pollfd p{fds[0], POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 30'000), 1);
  ASSERT_EQ(read(fds[0], &victim_port, sizeof victim_port),
            static_cast<ssize_t>(sizeof victim_port));
  close(fds[0]);

  const Keyring ring(TestKey(1));
  Peer a("a", ring);
  Peer b("b", ring);
  a.cluster().Join({"127.0.0.1:" + std::to_string(victim_port)});
  b.cluster().Join({a.address()});
  const bool joined = WaitFor([&] { return AllSeeAlive({&a, &b}, 3); });
  if (!joined) kill(pid, SIGKILL);
  ASSERT_TRUE(joined) << DescribeAll({&a, &b});

  ASSERT_EQ(kill(pid, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFSIGNALED(status));

  auto dead = [](const Peer& p) {
    const auto h = p.rec().History("victim");
    return p.StateOf("victim") == MemberState::kDead && !h.empty() &&
           h.back() == MemberState::kDead;
  };
  EXPECT_TRUE(WaitFor([&] { return dead(a) && dead(b); })) << DescribeAll({&a, &b});
  for (Peer* peer : {&a, &b}) {
    const auto h = peer->rec().History("victim");
    auto suspect = std::find(h.begin(), h.end(), MemberState::kSuspect);
    auto first_dead = std::find(h.begin(), h.end(), MemberState::kDead);
    EXPECT_TRUE(suspect != h.end() && suspect < first_dead)
        << peer->name() << " did not see it suspect before dead";
  }
  EXPECT_EQ(a.StateOf("b"), MemberState::kAlive);
  EXPECT_EQ(b.StateOf("a"), MemberState::kAlive);
}

// A node that differs in `change` tries to join; the cluster counts `reason`
// and never lists it.
void ExpectRefused(const std::function<void(TransportOptions&, Keyring&)>& change,
                   OpenFailure reason) {
  const Keyring ring(TestKey(1));
  Peer a("a", ring);
  Peer b("b", ring);
  b.cluster().Join({a.address()});
  ASSERT_TRUE(WaitFor([&] { return AllSeeAlive({&a, &b}, 2); })) << DescribeAll({&a, &b});

  TransportOptions t = Loopback();
  Keyring other_ring = ring;
  change(t, other_ring);
  Peer x("x", other_ring, t);
  x.cluster().Join({a.address(), b.address()});
  EXPECT_TRUE(WaitFor([&] { return Rejected(a, reason) >= 1 && Rejected(b, reason) >= 1; }))
      << "a rejected " << TotalRejected(a.stats()) << ", b " << TotalRejected(b.stats());
  // Give it time to sneak in through gossip or push-pull: it must not.
  const uint64_t a_streams = a.stats().streams_in;
  EXPECT_TRUE(WaitFor([&] { return a.stats().streams_in >= a_streams + 2; }));
  EXPECT_EQ(a.StateOf("x"), std::nullopt);
  EXPECT_EQ(b.StateOf("x"), std::nullopt);
  EXPECT_EQ(x.cluster().Members().size(), 1u);
  EXPECT_GE(x.stats().streams_failed, 2u);
  EXPECT_EQ(Rejected(a, reason), TotalRejected(a.stats()));
}

TEST(Transport, WrongKeyNeverAppears) {
  ExpectRefused([](TransportOptions&, Keyring& ring) { ring = Keyring(TestKey(9)); },
                OpenFailure::kKey);
}

TEST(Transport, WrongLabelIsRefused) {
  ExpectRefused([](TransportOptions& t, Keyring&) { t.envelope.label = "another-cluster"; },
                OpenFailure::kLabel);
}

TEST(Transport, OtherProtocolVersionIsRefused) {
  ExpectRefused([](TransportOptions& t, Keyring&) { t.envelope.version = 2; },
                OpenFailure::kVersion);
}

class SkewedClock final : public Clock {
 public:
  int64_t NowUnixNanos() const override {
    return SystemClock().NowUnixNanos() + int64_t{600} * 1'000'000'000;
  }
};

TEST(Transport, ClockOutsideTheReplayWindowIsRefused) {
  static const SkewedClock skewed;
  ExpectRefused([](TransportOptions& t, Keyring&) { t.clock = &skewed; }, OpenFailure::kStale);
}

TEST(Transport, GarbageIsCountedAndTheClusterKeepsWorking) {
  const Keyring ring(TestKey(1));
  TransportOptions t = Loopback();
  t.stream_timeout_ms = 500;
  Peer a("a", ring, t);
  Peer b("b", ring);
  b.cluster().Join({a.address()});
  ASSERT_TRUE(WaitFor([&] { return AllSeeAlive({&a, &b}, 2); })) << DescribeAll({&a, &b});
  const uint16_t port = a.cluster().port();

  // Datagrams: random bytes, a header with nothing behind it, a forged body,
  // one sealed with another key.
  const uint64_t before = TotalRejected(a.stats());
  std::mt19937 rng(7);
  int sent = 0;
  for (int i = 0; i < 50; ++i) {
    std::vector<uint8_t> junk(rng() % 1500);
    for (auto& byte : junk) byte = static_cast<uint8_t>(rng());
    if (!junk.empty()) junk[0] = 'X';
    SendDatagram(port, junk);
    ++sent;
  }
  SendDatagram(port, {'S', 'H', 1});
  std::vector<uint8_t> forged = {'S', 'H', 1, 0};
  forged.resize(200, 0xAB);
  SendDatagram(port, forged);
  const std::vector<uint8_t> plain(100, 1);
  SendDatagram(port, Seal(Keyring(TestKey(9)), EnvelopeOptions{}, SystemClock().NowUnixMillis(),
                          plain.data(), plain.size()));
  sent += 3;
  EXPECT_TRUE(WaitFor([&] { return TotalRejected(a.stats()) >= before + sent; }))
      << TotalRejected(a.stats()) - before << " of " << sent;
  EXPECT_GE(Rejected(a, OpenFailure::kKey), 2u);
  EXPECT_GE(Rejected(a, OpenFailure::kNotOurs) + Rejected(a, OpenFailure::kTruncated), 51u);
  EXPECT_GE(Rejected(a, OpenFailure::kTruncated), 1u);

  // A 1 GiB length prefix: refused at once, without reading or allocating.
  {
    TcpClient huge(port);
    ASSERT_TRUE(huge.connected());
    ASSERT_TRUE(huge.Send(Frame(1u << 30, {})));
    EXPECT_TRUE(huge.WaitClosed(30s));
    EXPECT_TRUE(WaitFor([&] { return Rejected(a, OpenFailure::kTooLarge) >= 1; }));
  }
  // Half a frame, then silence: cut at the deadline, while the cluster goes on.
  {
    const uint64_t timeouts = a.stats().timeouts;
    TcpClient slow(port);
    ASSERT_TRUE(slow.connected());
    ASSERT_TRUE(slow.Send(Frame(1000, std::vector<uint8_t>(10, 'S'))));
    Peer c("c", ring);
    c.cluster().Join({a.address()});
    EXPECT_TRUE(WaitFor([&] { return AllSeeAlive({&a, &b, &c}, 3); })) << DescribeAll({&a, &b, &c});
    size_t received = 0;
    EXPECT_TRUE(slow.WaitClosed(30s, &received));
    EXPECT_EQ(received, 0u);
    EXPECT_TRUE(WaitFor([&] { return a.stats().timeouts >= timeouts + 1; }));
    // A garbage frame and an empty one: closed without a reply.
    TcpClient garbage(port);
    ASSERT_TRUE(garbage.connected());
    ASSERT_TRUE(garbage.Send(Frame(100, std::vector<uint8_t>(100, 'X'))));
    EXPECT_TRUE(garbage.WaitClosed(30s, &received));
    EXPECT_EQ(received, 0u);
    TcpClient empty(port);
    ASSERT_TRUE(empty.connected());
    ASSERT_TRUE(empty.Send(Frame(0, {})));
    EXPECT_TRUE(empty.WaitClosed(30s, &received));
    EXPECT_EQ(received, 0u);
    // Still in business.
    EXPECT_TRUE(WaitForTraffic({&a, &b, &c}, 3));
    EXPECT_TRUE(AllSeeAlive({&a, &b, &c}, 3)) << DescribeAll({&a, &b, &c});
  }
  EXPECT_EQ(b.stats().rejected[static_cast<size_t>(OpenFailure::kKey)], 0u);
}

TEST(Transport, KeyRotationWithoutDowntime) {
  const Key k1 = TestKey(1);
  const Key k2 = TestKey(2);
  Peer a("a", Keyring(k1));
  Peer b("b", Keyring(k1));
  Peer c("c", Keyring(k1));
  b.cluster().Join({a.address()});
  c.cluster().Join({a.address()});
  ASSERT_TRUE(WaitFor([&] { return AllSeeAlive({&a, &b, &c}, 3); })) << DescribeAll({&a, &b, &c});
  const std::vector<Peer*> all = {&a, &b, &c};
  std::vector<size_t> marks;
  for (Peer* p : all) marks.push_back(p->rec().NumChanges());

  Keyring installed(k1);
  installed.Install(k2);
  Keyring used = installed;
  ASSERT_TRUE(used.Use(k2).ok());
  Keyring removed = used;
  ASSERT_TRUE(removed.Remove(k1).ok());
  for (const Keyring* step : {&installed, &used, &removed}) {
    for (Peer* p : all) p->cluster().SetKeyring(*step);
    EXPECT_TRUE(WaitForTraffic(all, 6));
  }
  // A push-pull round under the new key too.
  std::vector<uint64_t> streams;
  for (Peer* p : all) streams.push_back(p->stats().streams_in + p->stats().streams_out);
  EXPECT_TRUE(WaitFor([&] {
    for (size_t i = 0; i < all.size(); ++i) {
      if (all[i]->stats().streams_in + all[i]->stats().streams_out < streams[i] + 2) return false;
    }
    return true;
  }));
  EXPECT_TRUE(AllSeeAlive(all, 3)) << DescribeAll(all);
  for (size_t i = 0; i < all.size(); ++i) {
    const auto not_alive = all[i]->rec().NotAliveSince(marks[i]);
    EXPECT_TRUE(not_alive.empty()) << all[i]->name() << " saw " << not_alive.front();
  }

  // The old key is gone: a node holding only it is refused; the new one works.
  Peer old_key("old", Keyring(k1));
  old_key.cluster().Join({a.address()});
  EXPECT_TRUE(WaitFor([&] { return Rejected(a, OpenFailure::kKey) >= 1; }));
  Peer new_key("new", Keyring(k2));
  new_key.cluster().Join({a.address()});
  EXPECT_TRUE(WaitFor([&] { return AllSeeAlive({&a, &b, &c, &new_key}, 4); }))
      << DescribeAll({&a, &b, &c, &new_key});
  EXPECT_EQ(a.StateOf("old"), std::nullopt);
}

TEST(Transport, EventReachesEveryDelegateOnce) {
  const Keyring ring(TestKey(1));
  Peer a("a", ring);
  Peer b("b", ring);
  Peer c("c", ring);
  b.cluster().Join({a.address()});
  c.cluster().Join({b.address()});
  ASSERT_TRUE(WaitFor([&] { return AllSeeAlive({&a, &b, &c}, 3); })) << DescribeAll({&a, &b, &c});

  a.cluster().Broadcast("video.ready", "v-123");
  EXPECT_TRUE(WaitFor([&] {
    return b.rec().Events("video.ready").size() == 1 && c.rec().Events("video.ready").size() == 1;
  }));
  // Let gossip retransmissions and push-pull catch-up rounds pass: still once.
  std::vector<uint64_t> streams;
  for (Peer* p : {&a, &b, &c}) streams.push_back(p->stats().streams_in + p->stats().streams_out);
  EXPECT_TRUE(WaitFor([&] {
    const Peer* ps[] = {&a, &b, &c};
    for (size_t i = 0; i < 3; ++i) {
      if (ps[i]->stats().streams_in + ps[i]->stats().streams_out < streams[i] + 3) return false;
    }
    return true;
  }));
  for (Peer* p : {&a, &b, &c}) {
    const auto events = p->rec().Events("video.ready");
    ASSERT_EQ(events.size(), 1u) << p->name();
    EXPECT_EQ(events[0].origin, "a");
    EXPECT_EQ(events[0].payload, "v-123");
    EXPECT_EQ(events[0].local, p == &a);
  }
}

TEST(Transport, PushPullLargerThanADatagram) {
  const Keyring ring(TestKey(1));
  Peer a("a", ring);
  Peer b("b", ring);
  std::string state_a(200 * 1024, '\0');
  std::string state_b(200 * 1024, '\0');
  std::mt19937 rng(3);
  for (auto& ch : state_a) ch = static_cast<char>(rng());
  for (auto& ch : state_b) ch = static_cast<char>(rng());
  a.rec().set_local_state(state_a);
  b.rec().set_local_state(state_b);

  b.cluster().Join({a.address()});
  EXPECT_TRUE(WaitFor([&] { return a.rec().Merged(state_b) && b.rec().Merged(state_a); }));
  EXPECT_GT(a.stats().bytes_in, 200u * 1024);
  EXPECT_GT(a.stats().bytes_out, 200u * 1024);
  EXPECT_TRUE(WaitFor([&] { return AllSeeAlive({&a, &b}, 2); })) << DescribeAll({&a, &b});
}

TEST(Transport, OversizedDatagramsAreDroppedAndCounted) {
  const Keyring ring(TestKey(1));
  TransportOptions t = Loopback();
  t.max_datagram = 60;  // the envelope alone is 52 bytes
  Peer a("a", ring, t);
  Peer b("b", ring);
  b.cluster().Join({a.address()});
  EXPECT_TRUE(WaitFor([&] { return a.stats().dropped >= 3; }));
}

TEST(Transport, StartErrorsAreClear) {
  const Keyring ring(TestKey(1));
  Peer a("a", ring);

  asio::io_context io;
  TransportOptions taken = Loopback();
  taken.port = a.cluster().port();
  Cluster b(io, FastOptions("b"), taken, ring, nullptr, nullptr);
  auto r = b.Start();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("P2P_PORT"), std::string::npos) << r.error().message;

  Cluster no_key(io, FastOptions("c"), Loopback(), Keyring(), nullptr, nullptr);
  r = no_key.Start();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("P2P_CLUSTER_KEY"), std::string::npos) << r.error().message;

  TransportOptions bad_bind = Loopback();
  bad_bind.bind = "not-an-ip";
  Cluster bad(io, FastOptions("d"), bad_bind, ring, nullptr, nullptr);
  r = bad.Start();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("P2P_BIND"), std::string::npos) << r.error().message;

  Cluster no_name(io, FastOptions(""), Loopback(), ring, nullptr, nullptr);
  EXPECT_FALSE(no_name.Start().ok());

  // Started once only.
  EXPECT_FALSE(a.cluster().Start().ok());
}

TEST(Transport, AddressDefaultsToAnInterfaceWhenBoundToAny) {
  asio::io_context io;
  TransportOptions t = Loopback();
  t.bind = "0.0.0.0";
  Cluster any(io, FastOptions("any"), t, Keyring(TestKey(1)), nullptr, nullptr);
  ASSERT_TRUE(any.Start().ok());
  const std::string address = any.address();
  EXPECT_EQ(PortOf(address), any.port());
  EXPECT_NE(address.rfind("0.0.0.0:", 0), 0u) << address;

  TransportOptions adv = Loopback();
  adv.advertise_host = "10.1.2.3";
  Cluster advertised(io, FastOptions("adv"), adv, Keyring(TestKey(1)), nullptr, nullptr);
  ASSERT_TRUE(advertised.Start().ok());
  EXPECT_EQ(advertised.address(), "10.1.2.3:" + std::to_string(advertised.port()));
  // Nobody runs `io`: Stop must still return.
  io.stop();
  any.Stop();
  advertised.Stop();
}

}  // namespace
}  // namespace hub::cluster
