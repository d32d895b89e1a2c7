// stream-hub: the executable. Subcommands: serve (default), config, version.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>

#include "app/app.h"
#include "config/config.h"

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
  cli.require_subcommand(0, 1);
  CLI11_PARSE(cli, argc, argv);

  if (version->parsed()) {
    std::printf("stream-hub %s\n", kVersion);
    return 0;
  }
  auto loaded = LoadConfig(config_file);
  if (!loaded) {
    std::fprintf(stderr, "stream-hub: invalid configuration: %s\n", loaded.error().message.c_str());
    return 2;
  }
  if (config->parsed()) {
    std::cout << hub::config::Describe(*loaded);
    return 0;
  }
  (void)serve;
  hub::app::App app(loaded->config);
  if (auto r = app.Start(); !r) {
    std::fprintf(stderr, "stream-hub: cannot start: %s\n", r.error().message.c_str());
    return 1;
  }
  app.Run();
  return 0;
}
