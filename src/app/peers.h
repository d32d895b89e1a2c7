#pragma once
// The bridge between the cluster (src/cluster: gossip membership, events,
// discovery) and the hub's domains, built by the app when P2P_ENABLED=true.
// Domains never include the cluster; they get hints through PeersHooks and
// hand theirs to Publish. Events are hints: every hook re-reads the shared
// storage. Thread-safe.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "core/result.h"

namespace boost::asio { class io_context; }
namespace hub { class Metrics; }

namespace hub::app {

// Called on the cluster's thread: must be quick (post slow work elsewhere).
struct PeersHooks {
  std::function<void(const std::string& video_id)> video_changed;   // a peer changed a video
  std::function<void(const std::string& note_id)> note_changed;     // a peer edited a note
  // The node ids (job-queue identities) of the live members, self included,
  // each time membership changes.
  std::function<void(std::vector<std::string> node_ids)> members_changed;
};

struct PeersOptions {
  std::string node_id;        // this node's id (STATE_DIR/node_id): the job queue's identity
  uint16_t http_port = 0;     // advertised in the node's metadata
  std::string version = "1.0";  // TXT version and member version
};

class Peers {
 public:
  // Starts the gossip transport on P2P_BIND:P2P_PORT and the discovery
  // sources of P2P_DISCOVERY (Avahi, else the built-in mDNS; static seeds
  // always when P2P_SEEDS is set). Errors say what to fix (no key, port taken).
  static Result<std::unique_ptr<Peers>> Start(const config::Config& cfg, boost::asio::io_context& io,
                                              Metrics& metrics, PeersOptions options,
                                              PeersHooks hooks);
  ~Peers();

  // A cluster-wide hint: type "video" or "note", payload the id.
  void Publish(const std::string& type, const std::string& id);
  // Once a second from the app's background thread: re-reads a changed
  // P2P_KEYRING_FILE, re-joins discovered candidates that are not alive.
  void Tick();
  // GET /api/peers (docs/cluster.md).
  nlohmann::json Snapshot() const;
  // Goodbye on mDNS, graceful leave, sockets closed. Idempotent.
  void Stop();

  struct Impl;

 private:
  explicit Peers(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace hub::app
