#include "cluster/discovery/static_seeds.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>
#include <utility>

#include <spdlog/spdlog.h>

namespace hub::cluster {
namespace {

class Category : public std::error_category {
 public:
  const char* name() const noexcept override { return "static_seeds"; }
  std::string message(int c) const override {
    switch (static_cast<seeds_errc>(c)) {
      case seeds_errc::bad_seeds: return "bad P2P_SEEDS";
      case seeds_errc::unresolvable: return "no seed resolved to an address";
      case seeds_errc::already_started: return "already started";
    }
    return "unknown";
  }
};

constexpr char kExpected[] = "expected host:port,host2:port2 (IPv6 as [addr]:port)";

std::string_view Trim(std::string_view s) {
  const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

bool HostChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

// Decimal 1..65535, nothing else.
bool ParsePort(std::string_view s, uint16_t& port) {
  if (s.empty() || s.size() > 5) return false;
  uint32_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  if (v == 0 || v > 65535) return false;
  port = static_cast<uint16_t>(v);
  return true;
}

Result<Seed> ParseOne(std::string_view entry, size_t index) {
  const auto fail = [&](const std::string& why) {
    return MakeError(seeds_errc::bad_seeds, "P2P_SEEDS entry " + std::to_string(index) + " (\"" +
                                                std::string(entry) + "\") " + why + "; " + kExpected);
  };
  if (entry.find("://") != std::string_view::npos) return fail("is a URL, not host:port");
  Seed seed;
  std::string_view port_text;
  if (entry.front() == '[') {
    const size_t close = entry.find(']');
    if (close == std::string_view::npos) return fail("opens '[' without a closing ']'");
    const std::string addr(entry.substr(1, close - 1));
    in6_addr a6{};
    if (addr.empty() || ::inet_pton(AF_INET6, addr.c_str(), &a6) != 1) {
      return fail("has \"" + addr + "\" in brackets, which is not an IPv6 address");
    }
    const std::string_view after = entry.substr(close + 1);
    if (after.empty() || after.front() != ':') return fail("has no :port after the ']'");
    seed.host = addr;
    seed.ipv6 = true;
    port_text = after.substr(1);
  } else {
    const size_t colon = entry.find(':');
    if (colon == std::string_view::npos) return fail("has no port (write host:6881)");
    if (entry.find(':', colon + 1) != std::string_view::npos) {
      return fail("has more than one ':'; an IPv6 address goes in brackets, as [fe80::1]:6881");
    }
    const std::string_view host = entry.substr(0, colon);
    if (host.empty()) return fail("has no host before the ':'");
    if (!std::all_of(host.begin(), host.end(), HostChar)) {
      return fail("has a host with characters other than letters, digits, '.', '-' and '_'");
    }
    seed.host = std::string(host);
    port_text = entry.substr(colon + 1);
  }
  if (!ParsePort(port_text, seed.port)) {
    return fail("has port \"" + std::string(port_text) + "\", which is not a number from 1 to 65535");
  }
  return seed;
}

}  // namespace

const std::error_category& seeds_category() {
  static Category c;
  return c;
}

std::string Seed::text() const {
  return (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

Result<std::vector<Seed>> ParseSeeds(std::string_view text) {
  std::vector<Seed> seeds;
  if (Trim(text).empty()) return seeds;
  size_t index = 0;
  for (;;) {
    ++index;
    const size_t comma = text.find(',');
    const std::string_view entry = Trim(text.substr(0, comma));
    if (entry.empty()) {
      return MakeError(seeds_errc::bad_seeds,
                       "P2P_SEEDS entry " + std::to_string(index) +
                           " is empty (two commas in a row, or one at an end); " + kExpected);
    }
    auto seed = ParseOne(entry, index);
    if (!seed.ok()) return seed.error();
    seeds.push_back(std::move(*seed));
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return seeds;
}

Result<std::vector<std::string>> ResolveIPv4(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_DGRAM;  // one entry per address, not one per socket type
  addrinfo* res = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0) {
    const std::string why = rc == EAI_SYSTEM ? std::strerror(errno) : ::gai_strerror(rc);
    return MakeError(seeds_errc::unresolvable, "cannot resolve \"" + host + "\" to IPv4: " + why);
  }
  std::vector<std::string> out;
  for (const addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET || ai->ai_addr == nullptr) continue;
    char buf[INET_ADDRSTRLEN] = {};
    const auto* sin = reinterpret_cast<const sockaddr_in*>(ai->ai_addr);
    if (::inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof buf) == nullptr) continue;
    if (std::find(out.begin(), out.end(), buf) == out.end()) out.emplace_back(buf);
  }
  ::freeaddrinfo(res);
  if (out.empty()) {
    return MakeError(seeds_errc::unresolvable, "\"" + host + "\" has no IPv4 address");
  }
  return out;
}

StaticSeeds::StaticSeeds(StaticSeedsOptions options) : options_(std::move(options)) {
  if (!options_.resolve) options_.resolve = ResolveIPv4;
}

StaticSeeds::~StaticSeeds() { Stop(); }

Result<void> StaticSeeds::Start(const ServiceInfo& /*self*/, Found found) {
  {
    std::lock_guard lock(mu_);
    if (started_) return MakeError(seeds_errc::already_started, "static seeds: already started");
    if (options_.seeds.empty()) {
      return MakeError(seeds_errc::bad_seeds,
                       "P2P_DISCOVERY includes static but P2P_SEEDS is empty; set "
                       "P2P_SEEDS=host:port,... (the address of at least one other node)");
    }
    started_ = true;
    found_ = std::move(found);
  }
  return ResolveAndReport();
}

Result<void> StaticSeeds::Refresh() {
  {
    std::lock_guard lock(mu_);
    if (!started_ || stopped_) return Ok();
  }
  return ResolveAndReport();
}

void StaticSeeds::Stop() {
  // Taking the lock waits for a report in progress: none follows Stop.
  std::lock_guard lock(mu_);
  stopped_ = true;
  found_ = nullptr;
}

std::vector<std::string> StaticSeeds::problems() const {
  std::lock_guard lock(mu_);
  return problems_;
}

Result<void> StaticSeeds::ResolveAndReport() {
  // Resolution may block for seconds: no lock held, so Stop is not delayed by it.
  std::vector<Candidate> candidates;
  std::vector<std::string> problems;
  std::set<std::string> seen;
  for (const Seed& seed : options_.seeds) {
    if (seed.ipv6) {
      problems.push_back(seed.text() +
                         ": IPv6 seeds cannot be joined, the cluster's sockets are IPv4");
      continue;
    }
    auto addrs = options_.resolve(seed.host);
    if (!addrs.ok()) {
      problems.push_back(seed.text() + ": " + addrs.error().message);
      continue;
    }
    for (const std::string& ip : *addrs) {
      Candidate c;
      c.address = ip + ":" + std::to_string(seed.port);
      c.source = "static";
      if (seen.insert(c.address).second) candidates.push_back(std::move(c));
    }
  }

  std::lock_guard lock(mu_);
  if (stopped_) return Ok();
  problems_ = problems;
  if (candidates.empty()) {
    std::string msg = "none of the seeds in P2P_SEEDS resolved to an IPv4 address:";
    for (const std::string& p : problems) msg += " " + p + ";";
    msg += " check the names, or use IP addresses";
    return MakeError(seeds_errc::unresolvable, std::move(msg));
  }
  for (const std::string& p : problems) spdlog::warn("static seeds: {}", p);
  for (const Candidate& c : candidates) {
    spdlog::debug("static seeds: candidate {}", c.address);
    if (found_) found_(c);
  }
  return Ok();
}

}  // namespace hub::cluster
