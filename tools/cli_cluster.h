#pragma once
// The cluster's command-line subcommands: keygen, keyring, peers.

#include <string>

#include "config/config.h"

namespace hub::tools {

// Prints a new random cluster key (base64 of 32 bytes).
int Keygen();

// keyring list|install|use|remove [KEY] on P2P_KEYRING_FILE (or --file):
// rotation without downtime (docs/cluster.md). A running hub re-reads the
// file within a second.
int Keyring(const std::string& file, const std::string& action, const std::string& key);

// Asks the hub at `url` (default http://127.0.0.1:HTTP_PORT) for /api/peers
// and prints a table; `json` prints the JSON as it came.
int Peers(const config::Config& cfg, const std::string& url, bool json);

}  // namespace hub::tools
