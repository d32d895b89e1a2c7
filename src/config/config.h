#pragma once
// Configuration in the operators' terms (the setup guide's key names).
// Sources, highest precedence first: environment > .env in the working
// directory > TOML file (--config) > defaults. Every value is validated; an
// invalid one stops start-up with a message naming the key and what it accepts.
// See src/config/README.md for every key.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "core/result.h"

namespace hub::config {

enum class errc {
  invalid_value = 1,  // a value outside what its key accepts
  unknown_key,        // a key in the TOML file that is not a config key (typo)
  unreadable_file,    // --config missing or unreadable; .env present but unreadable
  syntax_error,       // TOML that does not parse, a nested table, a malformed .env line
};
const std::error_category& category();
inline std::error_code make_error_code(errc e) { return {static_cast<int>(e), category()}; }

struct Config {
  // http
  std::string http_bind = "0.0.0.0";       // HTTP_BIND
  uint16_t http_port = 8501;                // HTTP_PORT, 1..65535
  uint32_t http_header_timeout_s = 10;      // HTTP_HEADER_TIMEOUT_S, 1..300: a request head must arrive in this (slow-loris)
  uint32_t http_idle_timeout_s = 60;        // HTTP_IDLE_TIMEOUT_S, 1..3600: idle keep-alive connections close
  // shared storage (NFS in production)
  std::string data_dir = "./data";          // DATA_DIR
  std::string upload_dir;                   // UPLOAD_DIR, default DATA_DIR/videos
  std::string streams_dir;                  // STREAMS_DIR, default UPLOAD_DIR/streams
  std::string notepad_storage_path;         // NOTEPAD_STORAGE_PATH, default DATA_DIR/notes
  std::string analytics_dir;                // ANALYTICS_DIR, default DATA_DIR/analytics
  std::string storage_backend = "local";    // STORAGE_BACKEND: local
  // node-local
  std::string state_dir = "./var/state";    // STATE_DIR (indexes, token, node id)
  std::string logs_dir = "./var/logs";      // LOGS_DIR
  std::string temp_dir = "./var/tmp";       // TEMP_DIR
  std::string log_level = "info";           // LOG_LEVEL: trace|debug|info|warn|error
  // uploads
  uint64_t max_upload_size_mb = 20480;      // MAX_UPLOAD_SIZE_MB, 1..16777216 (20 GiB default)
  uint64_t upload_expiry_hours = 24;        // UPLOAD_EXPIRY_HOURS, 1..8760: abandoned uploads removed
  uint64_t delete_grace_minutes = 60;       // DELETE_GRACE_MINUTES, 0..10080: tombstone -> reclaim
  uint32_t rescan_interval_s = 10;          // RESCAN_INTERVAL_S, 1..3600: how often other nodes' writes are picked up
  // access
  std::string admin_token;                  // ADMIN_TOKEN, >= 16 chars; generated when empty
  // cluster (validated now, used later)
  bool p2p_enabled = false;                 // P2P_ENABLED
  uint16_t p2p_port = 6881;                 // P2P_PORT, 1..65535
  std::string p2p_node_name;                // P2P_NODE_NAME, default host name; 1..64 printable ASCII, no spaces
  uint32_t p2p_heartbeat_interval = 5;      // P2P_HEARTBEAT_INTERVAL seconds, 1..300
  std::string p2p_bind = "0.0.0.0";         // P2P_BIND
  std::string p2p_discovery = "avahi,mdns"; // P2P_DISCOVERY: avahi|mdns|static, comma list
  std::string p2p_seeds;                    // P2P_SEEDS host:port,...
  std::string p2p_cluster_key;              // P2P_CLUSTER_KEY base64 of 32 bytes
  std::string p2p_keyring_file;             // P2P_KEYRING_FILE
  std::string p2p_label;                    // P2P_LABEL: clusters with other labels ignore each other
  std::string p2p_profile = "lan";          // P2P_PROFILE: lan|wan|local timing preset (docs/cluster.md)
  std::string p2p_advertise_addr;           // P2P_ADVERTISE_ADDR: IPv4 peers reach us at; "" = derived
  // notepad
  bool community_notepad_enabled = true;    // COMMUNITY_NOTEPAD_ENABLED
  bool notepad_auto_sync = true;            // NOTEPAD_AUTO_SYNC
  uint32_t notepad_max_size_mb = 100;       // NOTEPAD_MAX_SIZE_MB, 1..1024
  uint32_t notepad_restore_days = 30;       // NOTEPAD_RESTORE_DAYS: deleted notes restorable, 1..3650
  // media pipeline
  uint32_t media_workers = 0;               // MEDIA_WORKERS, 0..256: concurrent jobs; 0 = max(1, cores / 2)
  uint32_t media_max_height = 2160;         // MEDIA_MAX_HEIGHT, 144..8640: larger videos (short side) are refused
  uint32_t media_max_duration_s = 21600;    // MEDIA_MAX_DURATION_S, 1..604800 (6 h): longer videos are refused
  std::string media_ladder = "1080,720,480,360,240";  // MEDIA_LADDER: comma list of 1080|720|480|360|240
  uint32_t media_job_timeout_s = 3600;      // MEDIA_JOB_TIMEOUT_S, 10..604800: one ffmpeg run's wall-clock limit
};

// Where a value came from, for `stream-hub config`.
struct Origin {
  std::string source;  // "default", "derived", "file:<path>", ".env", "environment"
};

struct Loaded {
  Config config;
  std::map<std::string, Origin> origins;  // key name -> origin, for every key
};

struct LoadOptions {
  std::optional<std::string> config_file;  // --config; error if given and unreadable
  std::string dotenv_path = ".env";        // ignored when missing
  // Environment to read; empty map + use_process_env=true reads environ.
  bool use_process_env = true;
  std::map<std::string, std::string> env;  // used when !use_process_env (tests)
};

// Loads and validates. Error messages name the key, the source and the
// accepted range, e.g. "HTTP_PORT=99999 (environment): must be an integer
// 1..65535"; every problem found is reported, one per line, and code() is
// that of the first.
Result<Loaded> Load(const LoadOptions& options);

// "KEY = value    # source" lines, secrets (ADMIN_TOKEN, P2P_CLUSTER_KEY)
// shown as "(set)" or "(not set)".
std::string Describe(const Loaded& loaded);

// All key names, in display order.
const std::vector<std::string>& KeyNames();

}  // namespace hub::config

template <>
struct std::is_error_code_enum<hub::config::errc> : std::true_type {};
