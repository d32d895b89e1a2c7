#include "cluster/mdns/mdns_discovery.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/multicast.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <mutex>
#include <random>
#include <thread>

#include <spdlog/spdlog.h>

namespace hub::cluster {
namespace asio = boost::asio;
using asio::ip::udp;
using mdns::Ipv4;

namespace {

struct Iface {
  std::string name;
  Ipv4 addr{}, mask{};
};

Ipv4 ToIpv4(const sockaddr* sa) {
  Ipv4 ip{};
  if (sa && sa->sa_family == AF_INET) {
    auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    std::memcpy(ip.data(), &in->sin_addr.s_addr, 4);
  }
  return ip;
}

std::string Str(const Ipv4& ip) {
  return asio::ip::address_v4(ip).to_string();
}

Error SocketError(std::string what) {
  return MakeError(mdns::make_error_code(mdns::errc::socket), std::move(what));
}

// The IPv4 interfaces to use: those named by address in `wanted`, or every
// up, non-loopback, multicast-capable one.
Result<std::vector<Iface>> FindInterfaces(const std::vector<std::string>& wanted) {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return SocketError("mdns: cannot list network interfaces (getifaddrs failed)");
  std::vector<Iface> all, chosen;
  for (ifaddrs* i = list; i; i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET) continue;
    if (!(i->ifa_flags & IFF_UP)) continue;
    Iface f{i->ifa_name, ToIpv4(i->ifa_addr), ToIpv4(i->ifa_netmask)};
    bool usable = (i->ifa_flags & IFF_MULTICAST) && !(i->ifa_flags & IFF_LOOPBACK);
    if (wanted.empty() && usable) chosen.push_back(f);
    all.push_back(std::move(f));
  }
  freeifaddrs(list);
  for (const auto& w : wanted) {
    boost::system::error_code ec;
    auto a = asio::ip::make_address_v4(w, ec);
    if (ec) return SocketError("mdns: '" + w + "' is not an IPv4 address; give interface addresses");
    auto it = std::find_if(all.begin(), all.end(), [&](const Iface& f) { return f.addr == a.to_bytes(); });
    if (it == all.end()) return SocketError("mdns: no interface that is up has the address " + w);
    chosen.push_back(*it);
  }
  if (chosen.empty())
    return SocketError("mdns: no usable interface (up, not loopback, multicast, with an IPv4 address); "
                       "name one with its address or use P2P_DISCOVERY=static");
  return chosen;
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

struct MdnsDiscovery::Impl {
  explicit Impl(MdnsOptions o) : opt(std::move(o)), timer(io) {}

  MdnsOptions opt;
  asio::io_context io;
  std::optional<udp::socket> sock;
  asio::steady_timer timer;
  std::unique_ptr<mdns::Engine> engine;
  std::vector<Iface> ifaces;
  Found found;
  std::vector<uint8_t> buf;
  std::thread thread;
  bool started = false, stopped = false;   // guarded by life
  std::mutex life;                          // serialises Start/Stop

  mutable std::mutex mu;
  MdnsStats stats;                          // guarded by mu
  std::string instance;                     // guarded by mu

  Result<void> Open() {
    boost::system::error_code ec;
    sock.emplace(io);
    sock->open(udp::v4(), ec);
    if (ec) return SocketError("mdns: cannot open a UDP socket: " + ec.message());
    sock->set_option(asio::socket_base::reuse_address(true), ec);
    int one = 1;
    // Avahi or another responder may hold 5353 too; SO_REUSEPORT lets us
    // share it with those that set it, SO_REUSEADDR with those that do not.
    ::setsockopt(sock->native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    ::setsockopt(sock->native_handle(), IPPROTO_IP, IP_RECVTTL, &one, sizeof one);
    sock->bind(udp::endpoint(asio::ip::address_v4::any(), opt.port), ec);
    if (ec)
      return SocketError("mdns: cannot bind UDP port " + std::to_string(opt.port) + ": " + ec.message() +
                         " (another responder holds it without SO_REUSEADDR? use P2P_DISCOVERY=avahi)");
    sock->set_option(asio::ip::multicast::hops(255), ec);
    sock->set_option(asio::ip::multicast::enable_loopback(true), ec);
    const auto group = asio::ip::address_v4(mdns::kGroup);
    for (const auto& f : ifaces) {
      sock->set_option(asio::ip::multicast::join_group(group, asio::ip::address_v4(f.addr)), ec);
      if (ec)
        return SocketError("mdns: cannot join 224.0.0.251 on " + f.name + " (" + Str(f.addr) +
                           "): " + ec.message() + " (is there a multicast route on that interface?)");
    }
    return Ok();
  }

  bool OnLink(const Ipv4& src) const {
    for (const auto& f : ifaces) {
      bool same = true;
      for (int i = 0; i < 4; ++i) same = same && ((src[i] & f.mask[i]) == (f.addr[i] & f.mask[i]));
      if (same) return true;
    }
    return false;
  }

  void Send(std::vector<mdns::Datagram> out) {
    boost::system::error_code ec;
    for (const auto& d : out) {
      udp::endpoint to(asio::ip::address_v4(d.to.ip), d.to.port);
      if (d.to == mdns::kMulticast) {
        to.port(opt.port);
        for (const auto& f : ifaces) {
          sock->set_option(asio::ip::multicast::outbound_interface(asio::ip::address_v4(f.addr)), ec);
          if (!ec) sock->send_to(asio::buffer(d.bytes), to, 0, ec);
          if (ec) Count([](MdnsStats& s) { ++s.send_errors; });
        }
      } else {
        sock->send_to(asio::buffer(d.bytes), to, 0, ec);
        if (ec) Count([](MdnsStats& s) { ++s.send_errors; });
      }
    }
  }

  template <class F>
  void Count(F f) {
    std::lock_guard lock(mu);
    f(stats);
  }

  // Sends what the engine produced, reports what it found, re-arms the timer.
  void Drain() {
    Send(engine->TakeOutgoing());
    for (const auto& e : engine->TakeEvents()) {
      using K = mdns::Event::Kind;
      switch (e.kind) {
        case K::kFound:
          if (found) found(e.candidate);
          break;
        case K::kRenamed:
          spdlog::warn("mdns: the instance name '{}' is taken by another host on the LAN; advertising as '{}' "
                       "(give each node a distinct P2P_NODE_NAME)", e.old_name, e.name);
          break;
        case K::kHostRenamed:
          spdlog::warn("mdns: host name '{}.local' is taken; using '{}.local'", e.old_name, e.name);
          break;
        case K::kAdvertised:
          spdlog::info("mdns: advertising '{}' on {}", e.name, Str(ifaces.front().addr));
          break;
        case K::kRemoved:
          break;
      }
      if (opt.on_event) opt.on_event(e);
    }
    {
      std::lock_guard lock(mu);
      stats.engine = engine->stats();
      instance = engine->instance();
    }
    ArmTimer();
  }

  void ArmTimer() {
    int64_t next = engine->NextWakeMs();
    if (next == INT64_MAX) {
      timer.cancel();
      return;
    }
    timer.expires_at(asio::steady_timer::time_point(std::chrono::milliseconds(next)));
    timer.async_wait([this](const boost::system::error_code& ec) {
      if (ec || stopped_io) return;
      engine->Tick(NowMs());
      Drain();
    });
  }

  void Read() {
    sock->async_wait(udp::socket::wait_read, [this](const boost::system::error_code& ec) {
      if (ec || stopped_io) return;
      ReadAll();
      Drain();
      Read();
    });
  }

  // recvmsg rather than receive_from: the IP TTL arrives as ancillary data.
  void ReadAll() {
    for (int n = 0; n < 64; ++n) {   // bounded per wake-up so timers still run
      sockaddr_in src{};
      iovec iov{buf.data(), buf.size()};
      alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int)) * 2];
      msghdr msg{};
      msg.msg_name = &src;
      msg.msg_namelen = sizeof src;
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = control;
      msg.msg_controllen = sizeof control;
      ssize_t len = ::recvmsg(sock->native_handle(), &msg, MSG_DONTWAIT);
      if (len < 0) return;   // EAGAIN or an error; wait for the next readiness
      if ((msg.msg_flags & MSG_TRUNC) || static_cast<size_t>(len) > opt.max_read) {
        Count([](MdnsStats& s) { ++s.dropped_oversize; });
        continue;
      }
      int ttl = -1;
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TTL) std::memcpy(&ttl, CMSG_DATA(c), sizeof ttl);
      mdns::Endpoint from;
      std::memcpy(from.ip.data(), &src.sin_addr.s_addr, 4);
      from.port = ntohs(src.sin_port);
      if (opt.check_ttl && ttl != 255 && !OnLink(from.ip)) {
        Count([](MdnsStats& s) { ++s.dropped_offlink; });
        continue;
      }
      engine->Receive(NowMs(), from, std::span<const uint8_t>(buf.data(), static_cast<size_t>(len)));
    }
  }

  bool stopped_io = false;   // io thread only
};

MdnsDiscovery::MdnsDiscovery(MdnsOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

MdnsDiscovery::~MdnsDiscovery() {
  Stop();
  if (impl_->thread.joinable()) {
    if (impl_->thread.get_id() == std::this_thread::get_id()) impl_->thread.detach();
    else impl_->thread.join();
  }
}

Result<void> MdnsDiscovery::Start(const ServiceInfo& self, Found found) {
  Impl& m = *impl_;
  std::lock_guard lock(m.life);
  if (m.started) return SocketError("mdns: Start called twice");
  auto ifaces = FindInterfaces(m.opt.interfaces);
  if (!ifaces) return ifaces.error();
  m.ifaces = std::move(*ifaces);
  m.buf.resize(m.opt.max_read + 1);   // one spare byte tells "too long" from "exactly max"
  HUB_TRY(m.Open());

  mdns::EngineOptions eo;
  eo.instance = self.node_name;
  eo.host = m.opt.host;
  eo.port = self.port;
  eo.txt = self.txt;
  eo.txt.emplace("version", "1.0");
  eo.txt.emplace("node_name", self.node_name);
  for (const auto& f : m.ifaces) eo.addresses.push_back(f.addr);
  eo.seed = m.opt.seed ? m.opt.seed : (uint64_t{std::random_device{}()} << 32 | std::random_device{}());
  m.engine = std::make_unique<mdns::Engine>(std::move(eo));
  m.found = std::move(found);
  m.started = true;

  asio::post(m.io, [&m] {
    m.engine->Start(NowMs());
    m.Drain();
    m.Read();
  });
  m.thread = std::thread([&m] { m.io.run(); });
  return Ok();
}

void MdnsDiscovery::Stop() {
  Impl& m = *impl_;
  std::lock_guard lock(m.life);
  if (!m.started || m.stopped) return;
  m.stopped = true;
  asio::post(m.io, [&m] {
    m.engine->Stop(NowMs());
    m.Send(m.engine->TakeOutgoing());   // the goodbyes, before the socket closes
    m.stopped_io = true;
    boost::system::error_code ec;
    m.timer.cancel();
    m.sock->close(ec);
    m.io.stop();
  });
  if (m.thread.get_id() != std::this_thread::get_id()) m.thread.join();
}

MdnsStats MdnsDiscovery::stats() const {
  std::lock_guard lock(impl_->mu);
  return impl_->stats;
}

std::string MdnsDiscovery::instance() const {
  std::lock_guard lock(impl_->mu);
  return impl_->instance;
}

}  // namespace hub::cluster
