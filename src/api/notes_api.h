#pragma once
// The community notepad's HTTP API: REST under /api/notes and one WebSocket
// per open note for live collaboration with presence. Contract:
// docs/notes-api.md.

#include <boost/asio/thread_pool.hpp>

#include <chrono>
#include <memory>
#include <string>

#include "api/access.h"
#include "core/clock.h"
#include "core/metrics.h"
#include "http/server.h"
#include "notes/notepad.h"

namespace hub::api {

struct NotesOptions {
  bool enabled = true;          // COMMUNITY_NOTEPAD_ENABLED: false -> every route answers 404
  bool auto_sync = true;        // NOTEPAD_AUTO_SYNC: live updates, or "new changes" notices
  std::string node_id;          // the CRDT agent of this node (per-session agents derive from it)
  uint64_t max_note_bytes = 100ull << 20;  // NOTEPAD_MAX_SIZE_MB (bounds request bodies too)
  double messages_per_second = 100;        // WebSocket rate limit per connection
  double message_burst = 200;
  std::chrono::milliseconds ws_idle_timeout{60'000};
};

struct NotesServices {
  notes::Notepad* notepad = nullptr;  // null when disabled
  const Access& access;
  Metrics& metrics;
  const Clock& clock;
  boost::asio::thread_pool& blocking;  // fsyncs of the notepad's logs
};

class NotesApi;

// Registers the notepad's routes (and installs the notepad's listener). The
// returned object must outlive the server.
std::shared_ptr<NotesApi> AddNoteRoutes(http::Router& router, NotesServices services,
                                        NotesOptions options);

// Closes every open notepad WebSocket (1001), at shutdown before the drain.
void EndNoteSessions(NotesApi& api);

}  // namespace hub::api
