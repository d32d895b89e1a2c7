#include "app/app.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <thread>

#include "api/api.h"
#include "api/notes_api.h"
#include "app/peers.h"
#include "catalog/video.h"
#include "core/clock.h"
#include "core/ids.h"
#include "core/metrics.h"
#include "events/bus.h"
#include "http/server.h"
#include "media/jobs.h"
#include "media/pipeline.h"
#include "media/runner.h"
#include "notes/notepad.h"
#include "storage/store.h"
#include "upload/upload.h"

namespace hub::app {

namespace asio = boost::asio;
namespace fs = std::filesystem;

namespace {

Error StartError(std::string message) {
  return MakeError(std::make_error_code(std::errc::invalid_argument), std::move(message));
}

// Reads a small node-local file, or "" when missing.
std::string ReadSmallFile(const fs::path& p) {
  std::ifstream in(p);
  std::string s;
  std::getline(in, s);
  return s;
}

bool WritePrivateFile(const fs::path& p, const std::string& content) {
  fs::path tmp = p;
  tmp += ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  bool ok = ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()) &&
            ::fsync(fd) == 0;
  ::close(fd);
  return ok && ::rename(tmp.c_str(), p.c_str()) == 0;
}

std::string HostNameForId() {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  std::string out;
  for (char c : std::string(host)) {
    if (std::isalnum(static_cast<unsigned char>(c))) out.push_back(static_cast<char>(std::tolower(c)));
    else if (c == '-' || c == '.') out.push_back('-');
    if (out.size() >= 40) break;
  }
  return out.empty() ? "node" : out;
}

}  // namespace

struct App::Impl {
  explicit Impl(config::Config c) : cfg(std::move(c)), signals(io) {}

  config::Config cfg;
  SystemClock clock;
  std::string node_id, admin_token;
  int state_lock_fd = -1;
  std::unique_ptr<storage::Store> videos_store;
  std::unique_ptr<catalog::VideoRepository> repo;
  std::unique_ptr<catalog::Index> index;
  std::unique_ptr<upload::Uploads> uploads;
  events::Bus bus;
  Metrics metrics;
  std::unique_ptr<api::TokenAccess> access;
  api::Readiness readiness;
  asio::io_context io;
  std::unique_ptr<asio::thread_pool> blocking;
  std::unique_ptr<http::Server> server;
  std::shared_ptr<api::Api> api;
  std::unique_ptr<storage::Store> notes_store;
  std::unique_ptr<notes::Notepad> notepad;  // null when COMMUNITY_NOTEPAD_ENABLED=false
  std::shared_ptr<api::NotesApi> notes_api;
  std::vector<std::thread> io_threads;
  asio::signal_set signals;
  std::thread background;
  std::mutex mu;
  std::condition_variable cv;
  bool stop_requested = false;
  bool stopped = false;
  std::unique_ptr<api::Services> services;
  // The media pipeline (declared last: destroyed first, it calls back into
  // the repository and the services).
  std::unique_ptr<storage::Store> streams_store;  // STREAMS_DIR
  std::unique_ptr<media::RendezvousOwnership> ownership;
  std::unique_ptr<media::JobQueue> jobs;
  std::unique_ptr<media::ProcessRunner> runner;
  std::mutex media_mu;  // serialises the read-merge-write of a video's `media`
  std::unique_ptr<media::Pipeline> pipeline;
  // The cluster (P2P_ENABLED=true): declared after the pipeline, destroyed
  // before it (its hooks call into the pipeline's ownership and the notepad).
  std::unique_ptr<Peers> peers;
  int bus_token = -1;

  Result<void> StartPeers();

  Result<void> StartPipeline();
  void MergeMedia(const std::string& id, const nlohmann::json& patch);

  Result<void> PrepareLocalState();
  void SetUpLogging();
  void ProbeStorage();
  void Rescan();
  void Sweep();
  void BackgroundLoop();
  void Shutdown();
};

Result<void> App::Impl::PrepareLocalState() {
  for (const auto& dir : {cfg.state_dir, cfg.logs_dir, cfg.temp_dir}) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return StartError("cannot create " + dir + ": " + ec.message());
  }
  // The state directory is node-local; one process owns it. flock is fine
  // here (never on the shared mount).
  fs::path lock = fs::path(cfg.state_dir) / "lock";
  state_lock_fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (state_lock_fd < 0) return StartError("cannot open " + lock.string() + ": " + strerror(errno));
  if (::flock(state_lock_fd, LOCK_EX | LOCK_NB) != 0) {
    std::string other = ReadSmallFile(lock);
    return StartError("STATE_DIR " + cfg.state_dir + " is in use by another running stream-hub (pid " +
                      other + "); give each instance its own STATE_DIR");
  }
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(state_lock_fd, 0) != 0 || ::pwrite(state_lock_fd, pid.data(), pid.size(), 0) < 0) {
    return StartError("cannot write " + lock.string());
  }

  fs::path node_file = fs::path(cfg.state_dir) / "node_id";
  node_id = ReadSmallFile(node_file);
  if (!IsValidId(node_id)) {
    node_id = HostNameForId() + "-" + RandomHex(4);
    if (!WritePrivateFile(node_file, node_id + "\n")) return StartError("cannot write " + node_file.string());
  }
  admin_token = cfg.admin_token;
  if (admin_token.empty()) {
    fs::path token_file = fs::path(cfg.state_dir) / "admin_token";
    admin_token = ReadSmallFile(token_file);
    if (admin_token.size() < 16) {
      admin_token = RandomHex(24);
      if (!WritePrivateFile(token_file, admin_token + "\n")) return StartError("cannot write " + token_file.string());
    }
  }
  return Ok();
}

void App::Impl::SetUpLogging() {
  std::vector<spdlog::sink_ptr> sinks;
  sinks.push_back(std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  try {
    sinks.push_back(std::make_shared<spdlog::sinks::rotating_file_sink_mt>(
        (fs::path(cfg.logs_dir) / "stream-hub.log").string(), 10 * 1024 * 1024, 5));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "warning: cannot log to %s: %s\n", cfg.logs_dir.c_str(), e.what());
  }
  auto logger = std::make_shared<spdlog::logger>("hub", sinks.begin(), sinks.end());
  logger->set_level(spdlog::level::from_str(cfg.log_level));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

// A write + read round trip on the shared storage, off the request path.
void App::Impl::ProbeStorage() {
  int64_t start = clock.NowUnixMillis();
  std::string path = ".health/" + node_id;
  std::string payload = std::to_string(start);
  bool ok = false;
  std::string reason;
  if (auto w = videos_store->WriteAtomic(path, payload); !w) {
    reason = "storage is not writable: " + w.error().message;
  } else if (auto r = videos_store->ReadAll(path, 64); !r || *r != payload) {
    reason = r ? "storage returned different bytes than written" : "storage is not readable: " + r.error().message;
  } else {
    ok = true;
  }
  int64_t end = clock.NowUnixMillis();
  readiness.Record(ok, reason, end, end - start);
  if (!ok) spdlog::warn("readiness: {}", reason);
}

// Picks up what other processes wrote to the shared storage.
void App::Impl::Rescan() {
  std::vector<std::string> ids;
  auto changed = index->SyncFrom(*repo, [&](const std::string& id) { ids.push_back(id); });
  if (!changed) spdlog::warn("rescan: {}", changed.error().message);
  if (!ids.empty()) spdlog::debug("rescan: {} videos changed on storage", ids.size());
  for (const auto& id : ids) {
    auto v = repo->GetIncludingDeleted(id);
    bus.Publish(events::VideoChanged{id, !v.ok() || v->deleted, /*elsewhere=*/true});
  }
}

// Expires abandoned uploads, finishes interrupted assemblies, reclaims the
// files of deleted videos after the grace period. Idempotent: every node may
// run it at the same time.
void App::Impl::Sweep() {
  if (auto ids = uploads->ListUnfinished()) {
    for (const auto& id : *ids) {
      auto st = uploads->Status(id);
      if (!st && st.code() == upload::errc::expired) {
        spdlog::info("upload {} expired; removing it", id);
        (void)uploads->Terminate(id);
        (void)repo->MarkDeleted(id);
        api::RefreshVideo(*services, id);
      } else if (st && st->offset == st->length) {
        if (auto done = uploads->FinishIfComplete(id); done && *done) {
          catalog::VideoPatch p;
          p.status = catalog::VideoStatus::kReady;
          p.size = st->length;
          if (repo->Update(id, p) && pipeline) (void)pipeline->Submit(id);
          api::RefreshVideo(*services, id);
        }
      }
    }
  }
  auto ids = repo->ListIds();
  if (!ids) return;
  int64_t grace = static_cast<int64_t>(cfg.delete_grace_minutes) * 60'000;
  for (const auto& id : *ids) {
    auto v = repo->GetIncludingDeleted(id);
    if (!v) continue;
    if (v->deleted) {
      if (auto r = repo->ReclaimIfExpired(id, grace); r && *r) {
        spdlog::info("reclaimed deleted video {}", id);
        if (pipeline) (void)pipeline->Forget(id);
        continue;
      }
      // Deleted on another node (or while this one was down): its jobs stop,
      // its renditions go at once (they are not part of the grace period).
      if (pipeline && streams_store->Stat(id).ok()) (void)pipeline->Cancel(id);
    } else if (pipeline && v->status == catalog::VideoStatus::kReady && v->media.is_object() &&
               (v->media.value("status", "") == "queued" || v->media.value("status", "") == "processing")) {
      // Resumes after a restart; queues what a crash between two jobs left out.
      if (auto r = pipeline->Advance(id); !r) spdlog::warn("media: {}: {}", id, r.error().message);
    } else if (v->status == catalog::VideoStatus::kUploading &&
               videos_store->Stat(catalog::VideoRepository::OriginalPath(id)).ok()) {
      // The process that finished the upload died before recording it.
      catalog::VideoPatch p;
      p.status = catalog::VideoStatus::kReady;
      if (auto st = videos_store->Stat(catalog::VideoRepository::OriginalPath(id))) p.size = st->size;
      if (repo->Update(id, p) && pipeline) (void)pipeline->Submit(id);
      api::RefreshVideo(*services, id);
    }
  }
}

Result<void> App::Impl::StartPipeline() {
  try {
    streams_store = storage::OpenLocalStore(cfg.streams_dir);
  } catch (const std::exception& e) {
    return StartError(std::string("STREAMS_DIR: ") + e.what());
  }
  ownership = std::make_unique<media::RendezvousOwnership>(node_id);
  media::JobQueueOptions qo;
  qo.node_id = node_id;
  jobs = std::make_unique<media::JobQueue>(*streams_store, clock, *ownership, qo);
  runner = media::NewProcessRunner();
  media::PipelineOptions po;
  unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  po.workers = cfg.media_workers != 0 ? static_cast<int>(cfg.media_workers) : static_cast<int>(std::max(1u, cores / 2));
  std::error_code ec;
  po.streams_root = fs::absolute(cfg.streams_dir, ec).lexically_normal().string();
  std::string originals = fs::absolute(cfg.upload_dir, ec).lexically_normal().string();
  po.original_path = [originals](const std::string& id) {
    return originals + "/" + catalog::VideoRepository::OriginalPath(id);
  };
  po.on_media = [this](const std::string& id, const nlohmann::json& patch) { MergeMedia(id, patch); };
  po.limits.max_height = static_cast<int>(cfg.media_max_height);
  po.limits.max_duration_s = cfg.media_max_duration_s;
  po.job_timeout = std::chrono::seconds(cfg.media_job_timeout_s);
  po.ladder.rungs.clear();
  for (const auto& rung : media::DefaultRungs()) {
    std::string name = std::to_string(rung.height);
    std::string list = "," + cfg.media_ladder + ",";
    if (list.find("," + name + ",") != std::string::npos) po.ladder.rungs.push_back(rung);
  }
  if (po.ladder.rungs.empty()) po.ladder.rungs = media::DefaultRungs();
  spdlog::info("media: {} workers, ladder {}, streams in {}", po.workers, cfg.media_ladder, po.streams_root);
  pipeline = std::make_unique<media::Pipeline>(*streams_store, *jobs, *runner, clock, std::move(po));
  services->streams_store = streams_store.get();
  services->on_upload_complete = [this](const std::string& id) {
    if (auto r = pipeline->Submit(id); !r) spdlog::warn("media: cannot queue {}: {}", id, r.error().message);
  };
  services->on_video_deleted = [this](const std::string& id) {
    if (auto r = pipeline->Cancel(id); !r) spdlog::warn("media: cannot cancel {}: {}", id, r.error().message);
  };
  pipeline->Start();
  return Ok();
}

// The cluster: hints from peers re-read the shared storage (off the
// cluster's thread); this node's own changes are hinted to the peers; the
// live members decide which node runs which media job.
Result<void> App::Impl::StartPeers() {
  PeersHooks hooks;
  hooks.video_changed = [this](const std::string& id) {
    if (!IsValidId(id)) return;
    asio::post(*blocking, [this, id] { api::RefreshVideo(*services, id, /*elsewhere=*/true); });
  };
  hooks.note_changed = [this](const std::string& id) {
    if (!notepad || id.empty() || id.size() > 128) return;
    asio::post(*blocking, [this, id] { notepad->PollNote(id); });
  };
  hooks.members_changed = [this](std::vector<std::string> ids) {
    if (ownership) {
      spdlog::info("media: jobs shared among {} live nodes", ids.size());
      ownership->SetMembers(std::move(ids));
    }
  };
  PeersOptions po;
  po.node_id = node_id;
  po.http_port = server->port();
  auto started = Peers::Start(cfg, io, metrics, po, std::move(hooks));
  if (!started) return StartError("cluster: " + started.error().message);
  peers = std::move(*started);
  bus_token = bus.Subscribe([this](const events::Event& e) {
    if (const auto* v = std::get_if<events::VideoChanged>(&e); v && !v->elsewhere && peers) {
      peers->Publish("video", v->id);
    }
  });
  if (notepad) {
    notepad->AddListener([this](const notes::NoteChange& c) {
      if (!c.origin.empty() && peers) peers->Publish("note", c.id);
    });
  }
  return Ok();
}

// The pipeline reports partial `media` objects; merged into this node's
// overlay (skipped when nothing changes) and pushed to open pages.
void App::Impl::MergeMedia(const std::string& id, const nlohmann::json& patch) {
  {
    std::lock_guard lock(media_mu);
    auto v = repo->Get(id);
    if (!v) return;  // deleted meanwhile
    nlohmann::json merged = v->media.is_object() ? v->media : nlohmann::json::object();
    // A finished video never goes back to processing (a late progress report).
    std::string was = merged.value("status", "");
    if ((was == "ready" || was == "failed") && patch.contains("status") && patch["status"] == "processing") return;
    if ((was == "ready" || was == "failed") && patch.size() == 1 && patch.contains("progress")) return;
    merged.update(patch);
    if (merged == v->media) return;
    catalog::VideoPatch p;
    p.media = std::move(merged);
    if (auto u = repo->Update(id, p); !u) {
      spdlog::warn("media: cannot record the state of {}: {}", id, u.error().message);
      return;
    }
  }
  api::RefreshVideo(*services, id);
}

void App::Impl::BackgroundLoop() {
  using namespace std::chrono;
  auto next_probe = steady_clock::now(), next_rescan = steady_clock::now() + seconds(2),
       next_sweep = steady_clock::now() + seconds(5), next_notes = steady_clock::now() + seconds(1);
  std::unique_lock lock(mu);
  while (!stop_requested) {
    auto now = steady_clock::now();
    lock.unlock();
    if (now >= next_probe) {
      ProbeStorage();
      next_probe = now + seconds(5);
    }
    if (now >= next_rescan) {
      Rescan();
      next_rescan = now + seconds(cfg.rescan_interval_s);
    }
    if (now >= next_sweep) {
      Sweep();
      if (notepad) {
        if (size_t n = notepad->Sweep()) spdlog::info("notepad: removed {} notes deleted long ago", n);
      }
      next_sweep = now + seconds(60);
    }
    if (now >= next_notes) {
      // Other processes' notepad logs: a stat per log, reads only what grew.
      if (notepad) notepad->Poll();
      if (peers) peers->Tick();
      next_notes = now + seconds(1);
    }
    lock.lock();
    cv.wait_until(lock, std::min({next_probe, next_rescan, next_sweep, next_notes}),
                  [&] { return stop_requested; });
  }
}

App::App(config::Config config) : impl_(std::make_unique<Impl>(std::move(config))) {}

App::~App() {
  Stop();
  if (impl_->state_lock_fd >= 0) ::close(impl_->state_lock_fd);
}

Result<void> App::Start() {
  Impl& m = *impl_;
  HUB_TRY(m.PrepareLocalState());
  m.SetUpLogging();
  spdlog::info("stream-hub starting: node {}, data {}, state {}", m.node_id, m.cfg.data_dir, m.cfg.state_dir);
  if (m.cfg.storage_backend != "local") return StartError("STORAGE_BACKEND must be local");
  try {
    m.videos_store = storage::OpenLocalStore(m.cfg.upload_dir);
  } catch (const std::exception& e) {
    return StartError(std::string("UPLOAD_DIR: ") + e.what());
  }
  m.repo = std::make_unique<catalog::VideoRepository>(*m.videos_store, m.node_id, m.clock);
  auto index = catalog::OpenIndex((fs::path(m.cfg.state_dir) / "catalog.sqlite").string());
  if (!index) return StartError("cannot open the index in STATE_DIR: " + index.error().message);
  m.index = std::move(*index);
  auto synced = m.index->SyncFrom(*m.repo);
  if (!synced) return StartError("cannot read the library from UPLOAD_DIR: " + synced.error().message);
  spdlog::info("index: {} videos, {} read from storage", m.index->size(), *synced);

  upload::UploadOptions uo;
  uo.max_size_bytes = m.cfg.max_upload_size_mb << 20;
  uo.expiry_ms = static_cast<int64_t>(m.cfg.upload_expiry_hours) * 3600 * 1000;
  uo.node_id = m.node_id;
  m.uploads = std::make_unique<upload::Uploads>(*m.videos_store, m.clock, uo);
  m.access = std::make_unique<api::TokenAccess>(m.admin_token, m.clock);
  unsigned cores = std::max(2u, std::thread::hardware_concurrency());
  m.blocking = std::make_unique<asio::thread_pool>(cores * 2);
  m.ProbeStorage();

  m.services = std::make_unique<api::Services>(api::Services{
      *m.videos_store, *m.repo, *m.index, *m.uploads, m.bus, m.metrics, *m.access, m.clock, m.readiness,
      *m.blocking});
  http::Router router;
  api::ApiOptions ao;
  ao.node_id = m.node_id;
  ao.version = "0.1.0";
  ao.notepad_enabled = m.cfg.community_notepad_enabled;
  HUB_TRY(m.StartPipeline());
  if (m.cfg.p2p_enabled) {
    Impl* self = &m;
    m.services->peers = [self]() -> nlohmann::json {
      if (self->peers) return self->peers->Snapshot();
      return {{"enabled", true}, {"node", self->cfg.p2p_node_name}, {"members", nlohmann::json::array()}};
    };
  }
  m.api = api::AddRoutes(router, *m.services, ao);

  if (m.cfg.community_notepad_enabled) {
    try {
      m.notes_store = storage::OpenLocalStore(m.cfg.notepad_storage_path);
    } catch (const std::exception& e) {
      return StartError(std::string("NOTEPAD_STORAGE_PATH: ") + e.what());
    }
    notes::NotepadOptions no;
    no.node = m.node_id;
    no.max_size_bytes = uint64_t{m.cfg.notepad_max_size_mb} << 20;
    no.restore_window_ms = int64_t{m.cfg.notepad_restore_days} * 24 * 3600 * 1000;
    m.notepad = std::make_unique<notes::Notepad>(*m.notes_store, m.clock, no);
    if (auto r = m.notepad->Open(); !r) return StartError("cannot read the notepad: " + r.error().message);
    spdlog::info("notepad: {} notes in {}", m.notepad->stats().notes, m.cfg.notepad_storage_path);
  }
  api::NotesOptions nopt;
  nopt.enabled = m.cfg.community_notepad_enabled;
  nopt.auto_sync = m.cfg.notepad_auto_sync;
  nopt.node_id = m.node_id;
  nopt.max_note_bytes = uint64_t{m.cfg.notepad_max_size_mb} << 20;
  m.notes_api = api::AddNoteRoutes(
      router, api::NotesServices{m.notepad.get(), *m.access, m.metrics, m.clock, *m.blocking}, nopt);

  http::ServerOptions so;
  so.bind = m.cfg.http_bind;
  so.port = m.cfg.http_port;
  so.header_timeout = std::chrono::seconds(m.cfg.http_header_timeout_s);
  so.idle_timeout = std::chrono::seconds(m.cfg.http_idle_timeout_s);
  Metrics* metrics = &m.metrics;
  auto& bytes_in = metrics->Counter("hub_http_received_bytes_total", {}, "Request bytes received.");
  auto& bytes_out = metrics->Counter("hub_http_sent_bytes_total", {}, "Response bytes sent.");
  auto& errors = metrics->Counter("hub_http_errors_total", {}, "Responses with a 5xx status.");
  m.server = std::make_unique<http::Server>(
      m.io, so, std::move(router), [metrics, &bytes_in, &bytes_out, &errors](const http::RequestRecord& r) {
        metrics->Counter("hub_http_requests_total",
                         {{"method", std::string(r.method)}, {"route", std::string(r.route)},
                          {"status", std::to_string(r.status)}},
                         "HTTP requests by route and status.")++;
        bytes_in += static_cast<int64_t>(r.bytes_in);
        bytes_out += static_cast<int64_t>(r.bytes_out);
        if (r.status >= 500) errors++;
        if (r.status >= 500) spdlog::warn("{} {} -> {}", r.method, r.path, r.status);
      });
  if (auto r = m.server->Start(); !r) return StartError("HTTP: " + r.error().message);
  if (m.cfg.p2p_enabled) HUB_TRY(m.StartPeers());

  m.signals.add(SIGINT);
  m.signals.add(SIGTERM);
  m.signals.async_wait([this](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    spdlog::info("signal {}: shutting down", sig);
    std::lock_guard lock(impl_->mu);
    impl_->stop_requested = true;
    impl_->cv.notify_all();
  });
  for (unsigned i = 0; i < cores; ++i) m.io_threads.emplace_back([&m] { m.io.run(); });
  m.background = std::thread([&m] { m.BackgroundLoop(); });

  std::string host = m.cfg.http_bind == "0.0.0.0" || m.cfg.http_bind == "::" ? "localhost" : m.cfg.http_bind;
  std::string base = "http://" + host + ":" + std::to_string(m.server->port());
  spdlog::info("listening on {}", base);
  std::printf("\n  stream-hub is running at %s\n  Sign in with this URL:\n    %s/signin?token=%s\n\n",
              base.c_str(), base.c_str(), m.admin_token.c_str());
  std::fflush(stdout);
  return Ok();
}

uint16_t App::http_port() const { return impl_->server ? impl_->server->port() : 0; }

void App::Run() {
  std::unique_lock lock(impl_->mu);
  impl_->cv.wait(lock, [&] { return impl_->stop_requested; });
  lock.unlock();
  impl_->Shutdown();
}

void App::Stop() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stop_requested = true;
    impl_->cv.notify_all();
  }
  impl_->Shutdown();
}

// The shutdown order, written once: stop accepting and drain HTTP (uploads in
// flight commit what they received, so they stay resumable), then background
// work, then the media pipeline, then the blocking pool, then the io threads.
void App::Impl::Shutdown() {
  {
    std::lock_guard lock(mu);
    if (stopped) return;
    stopped = true;
  }
  if (api) api::EndStreams(*api);
  if (notes_api) api::EndNoteSessions(*notes_api);
  if (server && !io_threads.empty()) {
    auto done = asio::co_spawn(io, server->Stop(), asio::use_future);
    done.wait();
    spdlog::info("HTTP server stopped");
  }
  signals.cancel();
  if (background.joinable()) background.join();
  // Leave the cluster gracefully (goodbye on mDNS, a "left" to the peers)
  // before the pipeline stops: the peers take over its jobs at once.
  if (bus_token >= 0) bus.Unsubscribe(bus_token);
  if (peers) peers->Stop();
  // Running ffmpegs are killed; their jobs are redone after a restart.
  if (pipeline) pipeline->Stop();
  if (blocking) blocking->join();
  io.stop();
  for (auto& t : io_threads) t.join();
  io_threads.clear();
  spdlog::info("stream-hub stopped");
}

}  // namespace hub::app
