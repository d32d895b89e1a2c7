// hub_avahi_tool: publishes a node through the Avahi daemon with
// AvahiDiscovery and prints what it sees, one JSON object per line on stdout:
//   {"event":"started","name":"n1","port":6881}
//   {"event":"published","name":"n1"}            (again after a collision or a daemon restart)
//   {"event":"found","address":"10.0.0.2:6881","node_name":"n2","version":"1.0","source":"avahi"}
//   {"event":"error","code":"daemon_unreachable","message":"..."}   then exit 2
//   {"event":"stopped"}                            after SIGTERM/SIGINT, then exit 0
// Logs go to stderr. Used by tests/integration/test_avahi_netns.py.
#include <csignal>
#include <cstdio>
#include <iostream>
#include <mutex>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "cluster/avahi/avahi_discovery.h"

namespace {

std::mutex out_mu;

void Emit(const nlohmann::json& j) {
  std::lock_guard lock(out_mu);
  std::cout << j.dump() << std::endl;
}

std::string CodeName(std::error_code ec) {
  using hub::cluster::avahi_errc;
  if (ec.category() != hub::cluster::avahi_category()) return ec.message();
  switch (static_cast<avahi_errc>(ec.value())) {
    case avahi_errc::daemon_unreachable: return "daemon_unreachable";
    case avahi_errc::client_failed: return "client_failed";
    case avahi_errc::publish_failed: return "publish_failed";
    case avahi_errc::browse_failed: return "browse_failed";
    case avahi_errc::already_started: return "already_started";
  }
  return "unknown";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Publish a stream-hub node through avahi-daemon and print the peers it finds (JSON lines)"};
  hub::cluster::ServiceInfo self;
  std::vector<std::string> txt;
  std::string log_level = "info";
  app.add_option("--name", self.node_name, "node name (the DNS-SD instance name)")->required();
  app.add_option("--port", self.port, "port advertised")->capture_default_str();
  app.add_option("--txt", txt, "extra TXT record key=value (repeatable)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  for (const auto& kv : txt) {
    auto eq = kv.find('=');
    self.txt[kv.substr(0, eq)] = eq == std::string::npos ? "" : kv.substr(eq + 1);
  }

  auto logger = spdlog::stderr_color_mt("avahi-tool");
  logger->set_level(spdlog::level::from_str(log_level));
  spdlog::set_default_logger(logger);

  // Block the stop signals before Avahi's thread exists so that it inherits
  // the mask and sigwait below is their only receiver.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  hub::cluster::AvahiOptions opts;
  opts.on_published = [](const std::string& name) { Emit({{"event", "published"}, {"name", name}}); };
  hub::cluster::AvahiDiscovery discovery(opts);
  auto started = discovery.Start(self, [](const hub::cluster::Candidate& c) {
    Emit({{"event", "found"}, {"address", c.address}, {"node_name", c.node_name}, {"version", c.version},
          {"source", c.source}});
  });
  if (!started) {
    Emit({{"event", "error"}, {"code", CodeName(started.code())}, {"message", started.error().message}});
    spdlog::error("{}", started.error().message);
    return 2;
  }
  Emit({{"event", "started"}, {"name", self.node_name}, {"port", self.port}});

  int sig = 0;
  sigwait(&stop, &sig);
  discovery.Stop();
  Emit({{"event", "stopped"}});
  return 0;
}
