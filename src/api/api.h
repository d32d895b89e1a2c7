#pragma once
// The HTTP handlers: REST for videos, tus uploads at /files/, media serving,
// server-sent events, sign-in, operations endpoints and the web UI.
// See docs/api.md for the contract.

#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "api/access.h"
#include "catalog/video.h"
#include "core/clock.h"
#include "core/metrics.h"
#include "events/bus.h"
#include "http/server.h"
#include "storage/store.h"
#include "upload/upload.h"

namespace hub::api {

// Storage readiness, kept fresh by a prober outside the request path so that
// /readyz never blocks on a stalled mount. Thread-safe.
class Readiness {
 public:
  void Record(bool ok, std::string reason, int64_t at_ms, int64_t took_ms) {
    std::lock_guard lock(mu_);
    ok_ = ok;
    reason_ = std::move(reason);
    at_ms_ = at_ms;
    took_ms_ = took_ms;
  }
  // Ready when the last probe succeeded, took at most `bound_ms`, and is not
  // older than `max_age_ms`; otherwise false and the reason.
  bool Ready(int64_t now_ms, int64_t bound_ms, int64_t max_age_ms, std::string* reason) const {
    std::lock_guard lock(mu_);
    if (at_ms_ == 0) {
      *reason = "storage has not been checked yet";
      return false;
    }
    if (now_ms - at_ms_ > max_age_ms) {
      *reason = "storage did not answer for " + std::to_string((now_ms - at_ms_) / 1000) + " s";
      return false;
    }
    if (!ok_) {
      *reason = reason_;
      return false;
    }
    if (took_ms_ > bound_ms) {
      *reason = "storage is slow: a write and read took " + std::to_string(took_ms_) + " ms";
      return false;
    }
    return true;
  }

 private:
  mutable std::mutex mu_;
  bool ok_ = false;
  std::string reason_;
  int64_t at_ms_ = 0, took_ms_ = 0;
};

struct ApiOptions {
  std::string node_id;
  std::string version;
  size_t max_json_bytes = 64 * 1024;
  size_t max_sse_clients = 1000;
  bool notepad_enabled = true;  // reported by GET /api/session so the UI can hide the notepad
};

struct Services {
  storage::Store& videos_store;        // rooted at UPLOAD_DIR
  catalog::VideoRepository& videos;
  catalog::Index& index;
  upload::Uploads& uploads;
  events::Bus& bus;
  Metrics& metrics;
  const Access& access;
  const Clock& clock;
  const Readiness& readiness;
  boost::asio::thread_pool& blocking;  // slow storage work (fsync, assembly)
  // Rooted at STREAMS_DIR: HLS renditions and thumbnails served under
  // /media/{id}/hls/ and /media/{id}/thumbs/; null = not served (404).
  storage::Store* streams_store = nullptr;
  // The media pipeline's hooks (set by the app; empty = no pipeline):
  // an upload is complete (the original is in place) / a video was deleted.
  // Called on a blocking-pool thread.
  std::function<void(const std::string& id)> on_upload_complete;
  std::function<void(const std::string& id)> on_video_deleted;
  // GET /api/peers: the cluster's members (docs/cluster.md); empty = this
  // node runs alone (P2P_ENABLED=false). Thread-safe, quick.
  std::function<nlohmann::json()> peers;
};

class Api;

// Registers every route on `router`. The returned object owns handler state
// and must outlive the server.
std::shared_ptr<Api> AddRoutes(http::Router& router, Services services, ApiOptions options);

// Ends every open event stream (called at shutdown, before the server's
// drain, so long-lived streams do not hold it up).
void EndStreams(Api& api);

// Re-reads a video from storage into the index and publishes VideoChanged.
// Also used by the app when it notices another process's changes.
// `elsewhere`: the change was made by another process (see VideoChanged).
void RefreshVideo(Services& s, const std::string& id, bool elsewhere = false);

}  // namespace hub::api
