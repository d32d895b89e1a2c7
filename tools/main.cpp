// stream-hub: the executable. Subcommands: serve (default), config, version,
// keygen, keyring, peers.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>

#include "app/app.h"
#include "config/config.h"
#include "cli_cluster.h"

namespace {

constexpr const char* kVersion = "0.1.0";

hub::Result<hub::config::Loaded> LoadConfig(const std::string& file) {
  hub::config::LoadOptions o;
  if (!file.empty()) o.config_file = file;
  return hub::config::Load(o);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App cli{"stream-hub: a self-hosted video upload and streaming hub"};
  std::string config_file;
  cli.add_option("--config", config_file, "TOML configuration file");
  auto* serve = cli.add_subcommand("serve", "Run the hub (the default)");
  auto* config = cli.add_subcommand("config", "Print the effective configuration and where each value came from");
  auto* version = cli.add_subcommand("version", "Print the version");
  auto* keygen = cli.add_subcommand("keygen", "Print a new cluster key for P2P_CLUSTER_KEY");
  auto* keyring = cli.add_subcommand("keyring", "Rotate cluster keys in P2P_KEYRING_FILE: list | install KEY | use KEY | remove KEY");
  std::string keyring_file, keyring_action, keyring_key;
  keyring->add_option("action", keyring_action, "list, install, use or remove")->required();
  keyring->add_option("key", keyring_key, "a base64 key (from keygen)");
  keyring->add_option("--file", keyring_file, "the keyring file (default: P2P_KEYRING_FILE)");
  auto* peers = cli.add_subcommand("peers", "List the cluster's members as the running hub sees them");
  std::string peers_url;
  bool peers_json = false;
  peers->add_option("--url", peers_url, "the hub to ask (default http://127.0.0.1:HTTP_PORT)");
  peers->add_flag("--json", peers_json, "print /api/peers as JSON");
  cli.require_subcommand(0, 1);
  CLI11_PARSE(cli, argc, argv);

  if (version->parsed()) {
    std::printf("stream-hub %s\n", kVersion);
    return 0;
  }
  if (keygen->parsed()) return hub::tools::Keygen();
  auto loaded = LoadConfig(config_file);
  if (!loaded) {
    std::fprintf(stderr, "stream-hub: invalid configuration: %s\n", loaded.error().message.c_str());
    return 2;
  }
  if (config->parsed()) {
    std::cout << hub::config::Describe(*loaded);
    return 0;
  }
  if (keyring->parsed()) {
    return hub::tools::Keyring(keyring_file.empty() ? loaded->config.p2p_keyring_file : keyring_file,
                               keyring_action, keyring_key);
  }
  if (peers->parsed()) return hub::tools::Peers(loaded->config, peers_url, peers_json);
  (void)serve;
  hub::app::App app(loaded->config);
  if (auto r = app.Start(); !r) {
    std::fprintf(stderr, "stream-hub: cannot start: %s\n", r.error().message.c_str());
    return 1;
  }
  app.Run();
  return 0;
}
