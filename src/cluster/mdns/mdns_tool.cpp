// hub_mdns_tool: advertises one stream-hub service with the built-in mDNS
// responder and prints what the browser finds, one JSON object per line:
//   {"event":"started","instance":"hub1"}
//   {"event":"advertised","instance":"hub1"}
//   {"event":"found","instance":"hub2","address":"10.1.2.2:6881","node_name":"hub2","version":"1.0","source":"mdns"}
//   {"event":"removed",...same fields...}
//   {"event":"renamed","instance":"hub1 (2)","old":"hub1"}   (also "host_renamed")
//   {"event":"stopped","stats":{...}}
// Runs until SIGTERM/SIGINT (or --duration-ms), then sends goodbyes and exits 0.
// Used by tests/integration/test_mdns_netns.py inside network namespaces.

#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>

#include "cluster/mdns/mdns_discovery.h"

namespace {

std::mutex out_mu;

void Print(const nlohmann::json& j) {
  std::lock_guard lock(out_mu);
  std::cout << j.dump() << std::endl;
}

nlohmann::json CandidateJson(const char* event, const std::string& instance, const hub::cluster::Candidate& c) {
  return {{"event", event}, {"instance", instance}, {"address", c.address}, {"node_name", c.node_name},
          {"version", c.version}, {"source", c.source}};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App cli{"hub_mdns_tool: advertise a stream-hub service over mDNS and print what is found"};
  std::string name;
  int port = 6881;
  int64_t duration_ms = 0;
  std::vector<std::string> txt;
  hub::cluster::MdnsOptions opt;
  cli.add_option("--name", name, "node name (the DNS-SD instance name)")->required();
  cli.add_option("--port", port, "advertised P2P port")->check(CLI::Range(1, 65535));
  cli.add_option("--interface", opt.interfaces, "IPv4 address of an interface to use (repeatable)");
  cli.add_option("--host", opt.host, "host label for <host>.local (default: from the name)");
  cli.add_option("--txt", txt, "extra TXT entry key=value (repeatable)");
  cli.add_option("--duration-ms", duration_ms, "stop after this long (default: until SIGTERM)");
  CLI11_PARSE(cli, argc, argv);

  // Block the stop signals before any thread starts so that only sigwait sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  hub::cluster::ServiceInfo self;
  self.node_name = name;
  self.port = static_cast<uint16_t>(port);
  for (const auto& kv : txt) {
    auto eq = kv.find('=');
    self.txt[kv.substr(0, eq)] = eq == std::string::npos ? "" : kv.substr(eq + 1);
  }
  opt.on_event = [](const hub::cluster::mdns::Event& e) {
    using K = hub::cluster::mdns::Event::Kind;
    switch (e.kind) {
      case K::kFound: Print(CandidateJson("found", e.instance, e.candidate)); break;
      case K::kRemoved: Print(CandidateJson("removed", e.instance, e.candidate)); break;
      case K::kAdvertised: Print({{"event", "advertised"}, {"instance", e.name}}); break;
      case K::kRenamed: Print({{"event", "renamed"}, {"instance", e.name}, {"old", e.old_name}}); break;
      case K::kHostRenamed: Print({{"event", "host_renamed"}, {"host", e.name}, {"old", e.old_name}}); break;
    }
  };
  hub::cluster::MdnsDiscovery mdns(opt);
  auto started = mdns.Start(self, [](const hub::cluster::Candidate&) {});
  if (!started) {
    std::cerr << "hub_mdns_tool: " << started.error().message << "\n";
    return 1;
  }
  Print({{"event", "started"}, {"instance", name}});

  if (duration_ms > 0) {
    timespec ts{static_cast<time_t>(duration_ms / 1000), static_cast<long>(duration_ms % 1000) * 1'000'000};
    while (sigtimedwait(&stop_signals, nullptr, &ts) < 0 && errno == EINTR) {
    }
  } else {
    int sig = 0;
    sigwait(&stop_signals, &sig);
  }
  mdns.Stop();
  auto s = mdns.stats();
  Print({{"event", "stopped"},
         {"stats",
          {{"packets_in", s.engine.packets_in}, {"packets_out", s.engine.packets_out},
           {"malformed", s.engine.malformed}, {"ignored", s.engine.ignored}, {"conflicts", s.engine.conflicts},
           {"answers_suppressed", s.engine.answers_suppressed}, {"dropped_offlink", s.dropped_offlink},
           {"dropped_oversize", s.dropped_oversize}, {"send_errors", s.send_errors}}}});
  return 0;
}
