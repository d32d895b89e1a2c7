#include "api/api.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <deque>
#include <nlohmann/json.hpp>
#include <optional>

#include "api/common.h"
#include "http/multipart.h"
#include "core/ids.h"
#include "http/file_response.h"
#include "upload/tus_headers.h"
#include "webui/assets.h"

namespace hub::api {

namespace asio = boost::asio;
using json = nlohmann::json;
using http::Exchange;
using http::Response;
using detail::IsValidUtf8;
using detail::Json;
using detail::NoContent;
using detail::OffThread;
using detail::TruncateUtf8;

namespace {

constexpr size_t kBodyBuffer = 1 << 20;  // one read from the socket, one write to storage

int StatusFor(const std::error_code& code) {
  using upload::errc;
  if (code.category() == upload::category()) {
    switch (static_cast<errc>(code.value())) {
      case errc::not_found: return 404;
      case errc::bad_request: return 400;
      case errc::unsupported_checksum: return 400;
      case errc::offset_mismatch: return 409;
      case errc::busy: return 409;
      case errc::too_large: return 413;
      case errc::length_exceeded: return 413;
      case errc::checksum_mismatch: return 460;
      case errc::expired: return 410;
      case errc::no_space: return 507;
      case errc::io_error: return 500;
    }
  }
  if (code.category() == catalog::category()) {
    switch (static_cast<catalog::errc>(code.value())) {
      case catalog::errc::not_found: return 404;
      case catalog::errc::already_exists: return 409;
      case catalog::errc::invalid_argument: return 400;
      case catalog::errc::corrupt: return 500;
    }
  }
  if (code == storage::errc::no_space) return 507;
  if (code == storage::errc::not_found) return 404;
  return 500;
}

std::string CodeName(int status) {
  switch (status) {
    case 400: return "bad_request";
    case 404: return "not_found";
    case 409: return "conflict";
    case 410: return "gone";
    case 412: return "precondition_failed";
    case 413: return "too_large";
    case 415: return "unsupported_media_type";
    case 460: return "checksum_mismatch";
    case 507: return "storage_full";
    default: return status >= 500 ? "internal" : "error";
  }
}

Response ErrorResponse(const Error& e) {
  int status = StatusFor(e.code);
  return http::JsonError(status, CodeName(status), e.message);
}

std::string StemOf(std::string_view filename) {
  size_t slash = filename.find_last_of("/\\");
  if (slash != std::string_view::npos) filename.remove_prefix(slash + 1);
  size_t dot = filename.rfind('.');
  if (dot != std::string_view::npos && dot > 0) filename = filename.substr(0, dot);
  return std::string(filename);
}

std::string BaseName(std::string_view filename) {
  size_t slash = filename.find_last_of("/\\");
  if (slash != std::string_view::npos) filename.remove_prefix(slash + 1);
  return std::string(filename.substr(0, 255));
}

// Title for a new video: given, else the file name without extension.
std::string TitleFor(std::string_view given, std::string_view filename) {
  std::string t(given);
  if (t.find_first_not_of(" \t\r\n") == std::string::npos) t = StemOf(filename);
  if (t.find_first_not_of(" \t\r\n") == std::string::npos) t = "Untitled video";
  return TruncateUtf8(std::move(t), catalog::kMaxTitleBytes);
}

std::string ContentTypeOf(std::string_view given, std::string_view filename) {
  bool printable = std::all_of(given.begin(), given.end(), [](char c) { return c > 0x20 && c < 0x7f; });
  if (!given.empty() && given.size() < 128 && printable) return std::string(given);
  return std::string(http::ContentTypeFor(filename));
}

}  // namespace

void RefreshVideo(Services& s, const std::string& id, bool elsewhere) {
  auto v = s.videos.GetIncludingDeleted(id);
  if (v.ok()) {
    (void)s.index.Put(*v);
  } else if (v.code() == catalog::errc::not_found) {
    (void)s.index.Remove(id);
  }
  s.bus.Publish(events::VideoChanged{id, !v.ok() || v->deleted, elsewhere});
}

class Api : public std::enable_shared_from_this<Api> {
 public:
  Api(Services s, ApiOptions o)
      : s_(s),
        o_(std::move(o)),
        uploads_in_flight_(s.metrics.Gauge("hub_uploads_in_flight", {}, "Upload requests being received.")),
        upload_bytes_(s.metrics.Counter("hub_upload_bytes_total", {}, "Bytes of uploads stored.")),
        sse_clients_(s.metrics.Gauge("hub_sse_clients", {}, "Open server-sent event streams.")) {}

  ~Api() { s_.bus.Unsubscribe(bus_token_); }

  void Register(http::Router& r) {
    auto self = shared_from_this();
    std::weak_ptr<Api> weak = self;
    bus_token_ = s_.bus.Subscribe([weak](const events::Event& e) {
      if (auto api = weak.lock()) api->Broadcast(e);
    });
    auto bind = [self](auto method) {
      return [self, method](Exchange& ex) -> asio::awaitable<void> { co_await ((*self).*method)(ex); };
    };
    auto writer = [this, bind](auto method) { return RequireWriter(s_.access, bind(method)); };
    // Operations
    r.Add("GET", "/healthz", bind(&Api::Healthz));
    r.Add("GET", "/readyz", bind(&Api::Readyz));
    r.Add("GET", "/metrics", bind(&Api::MetricsText));
    // Session
    r.Add("GET", "/api/session", bind(&Api::GetSession));
    r.Add("POST", "/api/session", bind(&Api::PostSession));
    r.Add("DELETE", "/api/session", bind(&Api::DeleteSession));
    // Videos
    r.Add("GET", "/api/videos", bind(&Api::ListVideos));
    r.Add("POST", "/api/videos", writer(&Api::PostVideo));
    r.Add("GET", "/api/videos/{id}", bind(&Api::GetVideo));
    r.Add("PATCH", "/api/videos/{id}", writer(&Api::PatchVideo));
    r.Add("DELETE", "/api/videos/{id}", writer(&Api::DeleteVideo));
    r.Add("GET", "/api/events", bind(&Api::Events));
    r.Add("GET", "/api/peers", bind(&Api::GetPeers));
    r.Add("GET", "/media/{id}/original", bind(&Api::Original));
    r.Add("HEAD", "/media/{id}/original", bind(&Api::Original));
    r.Add("GET", "/media/{id}/hls/{path...}", bind(&Api::Hls));
    r.Add("HEAD", "/media/{id}/hls/{path...}", bind(&Api::Hls));
    r.Add("GET", "/media/{id}/thumbs/{name}", bind(&Api::Thumbs));
    r.Add("HEAD", "/media/{id}/thumbs/{name}", bind(&Api::Thumbs));
    // tus
    r.Add("OPTIONS", "/files/", bind(&Api::TusOptions));
    r.Add("OPTIONS", "/files", bind(&Api::TusOptions));
    r.Add("OPTIONS", "/files/{id}", bind(&Api::TusOptions));
    r.Add("POST", "/files/", writer(&Api::TusCreate));
    r.Add("POST", "/files", writer(&Api::TusCreate));
    r.Add("HEAD", "/files/{id}", writer(&Api::TusHead));
    r.Add("PATCH", "/files/{id}", writer(&Api::TusPatch));
    r.Add("DELETE", "/files/{id}", writer(&Api::TusDelete));
    r.Add("POST", "/files/{id}", writer(&Api::TusOverride));
    // Web UI
    r.Add("GET", "/", bind(&Api::Page));
    r.Add("GET", "/upload", bind(&Api::Page));
    r.Add("GET", "/watch/{id}", bind(&Api::Page));
    r.Add("GET", "/notes", bind(&Api::Page));
    r.Add("GET", "/notes/{id}", bind(&Api::Page));
    r.Add("GET", "/cluster", bind(&Api::Page));
    r.Add("GET", "/signin", bind(&Api::SignInPage));
    r.Add("GET", "/static/{path...}", bind(&Api::Static));
    r.Add("HEAD", "/static/{path...}", bind(&Api::Static));
  }

 private:
  // ---- operations ----
  asio::awaitable<void> Healthz(Exchange& ex) {
    Response r;
    r.headers.emplace_back("Content-Type", "text/plain; charset=utf-8");
    r.body = "ok\n";
    co_await ex.Send(std::move(r));
  }

  asio::awaitable<void> Readyz(Exchange& ex) {
    std::string reason;
    if (s_.readiness.Ready(s_.clock.NowUnixMillis(), 2000, 10'000, &reason)) {
      json body = {{"status", "ready"}, {"node", o_.node_id}};
      co_await ex.Send(Json(200, body));
    } else {
      json body = {{"status", "not ready"}, {"reason", reason}, {"node", o_.node_id}};
      co_await ex.Send(Json(503, body));
    }
  }

  asio::awaitable<void> MetricsText(Exchange& ex) {
    s_.metrics.Gauge("hub_videos", {}, "Videos in this node's index.") =
        static_cast<int64_t>(s_.index.size());
    Response r;
    r.headers.emplace_back("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    r.body = s_.metrics.Render();
    co_await ex.Send(std::move(r));
  }

  // ---- cluster ----
  asio::awaitable<void> GetPeers(Exchange& ex) {
    json body;
    if (s_.peers) {
      body = s_.peers();
    } else {
      body = {{"enabled", false}, {"node", o_.node_id}, {"members", json::array()}};
    }
    Response r = Json(200, body);
    r.headers.emplace_back("Cache-Control", "no-store");
    co_await ex.Send(std::move(r));
  }

  // ---- session ----
  asio::awaitable<void> GetSession(Exchange& ex) {
    json body = {{"signed_in", s_.access.Authenticate(ex.request()).authenticated},
                 {"features", {{"notepad", o_.notepad_enabled}, {"cluster", static_cast<bool>(s_.peers)}}}};
    co_await ex.Send(Json(200, body));
  }

  asio::awaitable<void> PostSession(Exchange& ex) {
    auto body = co_await ReadJson(ex);
    if (!body) co_return;
    std::string token = body->is_object() && (*body)["token"].is_string() ? (*body)["token"].get<std::string>() : "";
    std::string cookie = s_.access.SignIn(token);
    if (cookie.empty()) {
      co_await ex.Send(http::JsonError(401, "unauthorized", "That token is not right. Copy it from the hub's start-up log."));
      co_return;
    }
    http::Headers h = {{"Set-Cookie", cookie}};
    co_await ex.Send(NoContent(std::move(h)));
  }

  asio::awaitable<void> DeleteSession(Exchange& ex) {
    http::Headers h = {{"Set-Cookie", TokenAccess::SignOutCookie()}};
    co_await ex.Send(NoContent(std::move(h)));
  }

  // ---- videos ----
  asio::awaitable<void> ListVideos(Exchange& ex) {
    const auto& req = ex.request();
    catalog::Query q;
    q.q = std::string(req.query("q").value_or(""));
    q.sort = std::string(req.query("sort").value_or("newest"));
    q.cursor = std::string(req.query("cursor").value_or(""));
    if (auto limit = req.query("limit")) {
      auto n = upload::ParseUint(*limit, "limit");
      if (!n || *n < 1 || *n > 100) {
        co_await ex.Send(http::JsonError(400, "bad_request", "limit must be an integer 1..100"));
        co_return;
      }
      q.limit = static_cast<size_t>(*n);
    }
    if (q.q.size() > 200 || !IsValidUtf8(q.q)) {
      co_await ex.Send(http::JsonError(400, "bad_request", "q must be UTF-8 text of at most 200 bytes"));
      co_return;
    }
    auto page = s_.index.Find(q);
    if (!page) {
      co_await ex.Send(ErrorResponse(page.error()));
      co_return;
    }
    json items = json::array();
    for (const auto& v : page->items) items.push_back(catalog::ToJson(v));
    json body = {{"items", items},
                 {"next_cursor", page->next_cursor.empty() ? json(nullptr) : json(page->next_cursor)},
                 {"total", page->total}};
    co_await ex.Send(Json(200, body));
  }

  asio::awaitable<void> GetVideo(Exchange& ex) {
    std::string id(ex.request().param("id"));
    if (!IsValidId(id)) {
      co_await ex.Send(http::JsonError(404, "not_found", "No video has this id."));
      co_return;
    }
    auto work1 = [this, id] { return s_.videos.Get(id); };
    auto v = co_await OffThread(s_.blocking, std::move(work1));
    if (!v) {
      // Built before co_await: GCC 12 destroys a conditional's temporaries
      // twice across a suspension.
      Response r = v.code() == catalog::errc::not_found
                       ? http::JsonError(404, "not_found", "No video has this id.")
                       : ErrorResponse(v.error());
      co_await ex.Send(std::move(r));
      co_return;
    }
    co_await ex.Send(Json(200, catalog::ToJson(*v)));
  }

  asio::awaitable<void> PatchVideo(Exchange& ex) {
    std::string id(ex.request().param("id"));
    if (!IsValidId(id)) {
      co_await ex.Send(http::JsonError(404, "not_found", "No video has this id."));
      co_return;
    }
    auto body = co_await ReadJson(ex);
    if (!body) co_return;
    if (!body->is_object()) {
      co_await ex.Send(http::JsonError(400, "bad_request", "Send a JSON object with title and/or description."));
      co_return;
    }
    catalog::VideoPatch patch;
    for (auto& [key, value] : body->items()) {
      if ((key != "title" && key != "description") || !value.is_string()) {
        co_await ex.Send(http::JsonError(400, "bad_request",
                                         "Only 'title' and 'description' (strings) can be changed; '" +
                                             key.substr(0, 40) + "' cannot."));
        co_return;
      }
      (key == "title" ? patch.title : patch.description) = value.get<std::string>();
    }
    auto work2 = [this, id, patch] { return s_.videos.Update(id, patch); };
    auto v = co_await OffThread(s_.blocking, std::move(work2));
    if (!v) {
      co_await ex.Send(ErrorResponse(v.error()));
      co_return;
    }
    RefreshVideo(s_, id);
    co_await ex.Send(Json(200, catalog::ToJson(*v)));
  }

  asio::awaitable<void> DeleteVideo(Exchange& ex) {
    std::string id(ex.request().param("id"));
    if (!IsValidId(id)) {
      co_await ex.Send(http::JsonError(404, "not_found", "No video has this id."));
      co_return;
    }
    auto work3 = [this, id]() -> Result<void> {
      HUB_TRY(s_.videos.Get(id));
      HUB_TRY(s_.videos.MarkDeleted(id));
      // An unfinished upload stops here too.
      (void)s_.uploads.Terminate(id);
      // Running ffmpegs of the video stop, its renditions go.
      if (s_.on_video_deleted) s_.on_video_deleted(id);
      return Ok();
    };
    auto r = co_await OffThread(s_.blocking, std::move(work3));
    if (!r) {
      co_await ex.Send(ErrorResponse(r.error()));
      co_return;
    }
    RefreshVideo(s_, id);
    co_await ex.Send(NoContent());
  }

  // multipart/form-data: file (required), title, description.
  asio::awaitable<void> PostVideo(Exchange& ex) {
    std::string boundary = http::MultipartParser::BoundaryFrom(ex.request().header("Content-Type").value_or(""));
    if (boundary.empty()) {
      co_await ex.Send(http::JsonError(415, "unsupported_media_type",
                                       "Send multipart/form-data with a 'file' field (curl -F file=@clip.mp4)."));
      co_return;
    }
    if (auto len = ex.request().content_length(); len && *len > s_.uploads.options().max_size_bytes + 1'000'000) {
      ex.CloseAfterResponse();
      co_await ex.Send(http::JsonError(413, "too_large", "The file is over the maximum upload size (MAX_UPLOAD_SIZE_MB)."));
      co_return;
    }
    std::string id = NewId(s_.clock.NowUnixMillis());
    std::string incoming = id + "/incoming-" + RandomHex(8);
    std::string title, description, filename, filetype;
    std::string* field = nullptr;
    std::unique_ptr<storage::WritableFile> file;
    bool have_file = false;
    uint64_t size = 0;
    uint64_t max = s_.uploads.options().max_size_bytes;
    http::MultipartCallbacks cb;
    cb.on_part_begin = [&](const http::FormPart& p) -> Result<void> {
      field = nullptr;
      if (p.name == "file" && !p.filename.empty()) {
        if (have_file) return MakeError(std::make_error_code(std::errc::invalid_argument), "send one file per request");
        have_file = true;
        filename = BaseName(p.filename);
        filetype = p.content_type;
        auto f = s_.videos_store.OpenWrite(incoming, true);
        if (!f) return f.error();
        file = std::move(*f);
      } else if (p.name == "title") {
        field = &title;
      } else if (p.name == "description") {
        field = &description;
      }
      return Ok();
    };
    cb.on_data = [&](std::span<const char> d) -> Result<void> {
      if (file) {
        size += d.size();
        if (size > max) return MakeError(upload::errc::too_large, "The file is over the maximum upload size (MAX_UPLOAD_SIZE_MB).");
        return file->Append(d);
      }
      if (field) {
        if (field->size() + d.size() > catalog::kMaxDescriptionBytes) {
          return MakeError(catalog::errc::invalid_argument, "A text field is too long.");
        }
        field->append(d.data(), d.size());
      }
      return Ok();
    };
    cb.on_part_end = [&]() -> Result<void> {
      field = nullptr;
      if (file) {
        HUB_TRY(file->Sync());
        HUB_TRY(file->Close());
        file.reset();
      }
      return Ok();
    };
    http::MultipartParser parser(boundary);
    std::vector<char> buf(kBodyBuffer);
    ++uploads_in_flight_;
    Result<void> status = Ok();
    for (;;) {
      auto n = co_await ex.ReadSome(buf);
      if (!n) {
        status = n.error();
        break;
      }
      if (*n == 0) {
        status = parser.Finish();
        break;
      }
      upload_bytes_ += static_cast<int64_t>(*n);
      status = parser.Feed(std::string_view(buf.data(), *n), cb);
      if (!status) break;
    }
    --uploads_in_flight_;
    if (status && !have_file) {
      status = MakeError(std::make_error_code(std::errc::invalid_argument),
                         "The form has no 'file' field with a file in it.");
    }
    Result<catalog::Video> created = MakeError(catalog::errc::not_found, "");
    if (status) {
      catalog::NewVideo nv;
      nv.id = id;
      nv.title = TitleFor(title, filename);
      nv.description = description;
      nv.original_name = filename;
      nv.content_type = ContentTypeOf(filetype, filename);
      nv.size = size;
      nv.status = catalog::VideoStatus::kUploading;
      auto work4 = [this, nv, incoming, id, size]() -> Result<catalog::Video> {
        HUB_TRY(s_.videos.Create(nv));
        HUB_TRY(s_.videos_store.Rename(incoming, catalog::VideoRepository::OriginalPath(id)));
        catalog::VideoPatch p;
        p.status = catalog::VideoStatus::kReady;
        p.size = size;
        auto updated = s_.videos.Update(id, p);
        if (updated && s_.on_upload_complete) {
          s_.on_upload_complete(id);
          return s_.videos.Get(id);  // with media_status "queued"
        }
        return updated;
      };
      created = co_await OffThread(s_.blocking, std::move(work4));
      if (!created) status = created.error();
    }
    if (!status) {
      file.reset();
      auto work5 = [this, id] { return s_.videos_store.RemoveAll(id); };
      (void)co_await OffThread(s_.blocking, std::move(work5));
      if (ex.body_bytes_read() < ex.request().content_length().value_or(UINT64_MAX)) ex.CloseAfterResponse();
      const Error& e = status.error();
      if (e.code == http::errc::body_timeout || e.code == http::errc::connection_closed) co_return;
      if (e.code == std::errc::invalid_argument) {
        co_await ex.Send(http::JsonError(400, "bad_request", e.message));
      } else {
        co_await ex.Send(ErrorResponse(e));
      }
      co_return;
    }
    RefreshVideo(s_, id);
    auto r = Json(201, catalog::ToJson(*created));
    r.headers.emplace_back("Location", "/api/videos/" + id);
    co_await ex.Send(std::move(r));
  }

  asio::awaitable<void> Original(Exchange& ex) {
    std::string id(ex.request().param("id"));
    auto not_found = [] { return http::JsonError(404, "not_found", "No video file has this id."); };
    if (!IsValidId(id)) {
      co_await ex.Send(not_found());
      co_return;
    }
    // Hot path: a tombstone check and an open, no record parsing.
    if (s_.videos_store.Stat(id + "/deleted").ok()) {
      co_await ex.Send(not_found());
      co_return;
    }
    auto file = s_.videos_store.OpenRead(catalog::VideoRepository::OriginalPath(id));
    if (!file) {
      Response r = file.code() == storage::errc::not_found ? not_found() : ErrorResponse(file.error());
      co_await ex.Send(std::move(r));
      co_return;
    }
    http::FileToServe f = Servable(**file, ContentTypeCached(id), "public, max-age=3600");
    co_await http::ServeFile(ex, f);
  }

  // HLS playlists and segments: STREAMS_DIR/<id>/hls/<path>.
  asio::awaitable<void> Hls(Exchange& ex) {
    co_await ServeStream(ex, "hls", std::string(ex.request().param("path")));
  }
  // Posters, sprite sheets and their WebVTT index: STREAMS_DIR/<id>/thumbs/<name>.
  asio::awaitable<void> Thumbs(Exchange& ex) {
    co_await ServeStream(ex, "thumbs", std::string(ex.request().param("name")));
  }

  // Serves a file the media pipeline published. Only plain names (no
  // traversal, and never a dot-name: work dirs of jobs in progress are
  // hidden that way) with a known media extension.
  asio::awaitable<void> ServeStream(Exchange& ex, const std::string& area, const std::string& rel) {
    std::string id(ex.request().param("id"));
    auto not_found = [] { return http::JsonError(404, "not_found", "No such media file."); };
    auto ext_is = [&](std::string_view e) { return rel.size() > e.size() && rel.ends_with(e); };
    std::string type, cache = "public, max-age=31536000, immutable";
    if (ext_is(".m3u8")) {
      type = "application/vnd.apple.mpegurl";
      cache = "no-cache";  // the master is rewritten as renditions become ready
    } else if (ext_is(".ts")) {
      type = "video/mp2t";
    } else if (ext_is(".m4s") || ext_is(".mp4")) {
      type = "video/mp4";
    } else if (ext_is(".jpg")) {
      type = "image/jpeg";
    } else if (ext_is(".vtt")) {
      type = "text/vtt; charset=utf-8";
    }
    if (!IsValidId(id) || s_.streams_store == nullptr || type.empty() || !IsPublishedPath(rel) ||
        (area == "thumbs" && rel.find('/') != std::string::npos) ||
        s_.videos_store.Stat(id + "/deleted").ok()) {
      co_await ex.Send(not_found());
      co_return;
    }
    auto file = s_.streams_store->OpenRead(id + "/" + area + "/" + rel);
    if (!file) {
      Response r = file.code() == storage::errc::not_found ? not_found() : ErrorResponse(file.error());
      co_await ex.Send(std::move(r));
      co_return;
    }
    http::FileToServe f = Servable(**file, type, cache);
    co_await http::ServeFile(ex, f);
  }

  // What ServeFile needs of an opened file (which must outlive the serving).
  static http::FileToServe Servable(storage::ReadableFile& rf, std::string type, std::string cache) {
    http::FileToServe f;
    f.fd = rf.native_handle();
    f.read_at = [&rf](uint64_t off, std::span<char> b) { return rf.ReadAt(off, b); };
    f.size = rf.size();
    f.mtime_unix_nanos = rf.mtime_unix_nanos();
    f.content_type = std::move(type);
    f.cache_control = std::move(cache);
    return f;
  }

  // 1..4 components of [A-Za-z0-9_-.], none empty or starting with '.'.
  static bool IsPublishedPath(std::string_view rel) {
    if (rel.empty() || rel.size() > 512) return false;
    int components = 0;
    size_t start = 0;
    for (;;) {
      size_t slash = rel.find('/', start);
      std::string_view c = rel.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
      if (c.empty() || c.front() == '.' || ++components > 4) return false;
      for (char ch : c) {
        if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_' && ch != '-' && ch != '.') return false;
      }
      if (slash == std::string_view::npos) return true;
      start = slash + 1;
    }
  }

  std::string ContentTypeCached(const std::string& id) {
    {
      std::lock_guard lock(mu_);
      if (auto it = content_types_.find(id); it != content_types_.end()) return it->second;
    }
    std::string ct = "application/octet-stream";
    if (auto v = s_.videos.GetIncludingDeleted(id); v.ok()) {
      ct = ContentTypeOf(v->content_type, v->original_name);
      if (ct.rfind("video/", 0) != 0 && ct.rfind("audio/", 0) != 0) {
        ct = std::string(http::ContentTypeFor(v->original_name));
      }
    }
    std::lock_guard lock(mu_);
    if (content_types_.size() > 10'000) content_types_.clear();
    content_types_[id] = ct;
    return ct;
  }

  // ---- server-sent events ----
  struct Listener {
    std::mutex mu;
    std::deque<std::string> queue;
    bool overflow = false;
    std::optional<asio::steady_timer> wake;
  };


 public:
  // Ends every open event stream (shutdown).
  void EndStreams() {
    std::vector<std::shared_ptr<Listener>> targets;
    {
      std::lock_guard lock(mu_);
      ending_ = true;
      for (auto& w : listeners_) {
        if (auto p = w.lock()) targets.push_back(std::move(p));
      }
    }
    for (auto& l : targets) {
      {
        std::lock_guard lock(l->mu);
        l->overflow = true;  // ends the loop at its next turn
      }
      asio::post(l->wake->get_executor(), [l] { l->wake->cancel(); });
    }
  }

 private:
  // Formats an event once and queues it for every open stream.
  void Broadcast(const events::Event& e) {
    std::vector<std::shared_ptr<Listener>> targets;
    {
      std::lock_guard lock(mu_);
      for (auto& w : listeners_) {
        if (auto p = w.lock()) targets.push_back(std::move(p));
      }
    }
    if (targets.empty()) return;
    const auto& vc = std::get<events::VideoChanged>(e);
    json video = nullptr;
    if (!vc.deleted) {
      if (auto v = s_.videos.Get(vc.id); v.ok()) video = catalog::ToJson(*v);
    }
    std::string msg = "event: video\ndata: " +
                      json{{"id", vc.id}, {"deleted", vc.deleted || video.is_null()}, {"video", video}}.dump() +
                      "\n\n";
    for (auto& l : targets) {
      {
        std::lock_guard lock(l->mu);
        if (l->queue.size() >= 256) {
          l->overflow = true;
        } else {
          l->queue.push_back(msg);
        }
      }
      asio::post(l->wake->get_executor(), [l] { l->wake->cancel(); });
    }
  }

  asio::awaitable<void> Events(Exchange& ex) {
    if (static_cast<size_t>(sse_clients_.load()) >= o_.max_sse_clients) {
      co_await ex.Send(http::JsonError(503, "busy", "Too many open event streams; retry later."));
      co_return;
    }
    auto executor = co_await asio::this_coro::executor;
    auto l = std::make_shared<Listener>();
    l->wake.emplace(executor, std::chrono::steady_clock::time_point::max());
    bool ending = false;
    {
      std::lock_guard lock(mu_);
      ending = ending_;
      if (!ending) listeners_.push_back(l);
    }
    if (ending) {
      co_await ex.Send(http::JsonError(503, "stopping", "The hub is shutting down."));
      co_return;
    }
    ++sse_clients_;
    auto done = [&] {
      std::lock_guard lock(mu_);
      std::erase_if(listeners_, [&](const auto& w) { auto p = w.lock(); return !p || p == l; });
      --sse_clients_;
    };
    http::Headers sse_headers = {
        {"Content-Type", "text/event-stream"}, {"Cache-Control", "no-store"}, {"X-Accel-Buffering", "no"}};
    if (!co_await ex.BeginStream(200, std::move(sse_headers))) {
      done();
      co_return;
    }
    bool ok = (co_await ex.WriteStream("retry: 3000\n: connected\n\n")).ok();
    while (ok && !ex.stopping()) {
      std::deque<std::string> batch;
      bool overflow = false;
      {
        std::lock_guard lock(l->mu);
        batch.swap(l->queue);
        overflow = l->overflow;
      }
      if (overflow) break;  // a slow reader: end the stream, it reconnects and reloads
      if (batch.empty()) {
        l->wake->expires_after(std::chrono::seconds(15));
        boost::system::error_code ec;
        co_await l->wake->async_wait(asio::redirect_error(asio::use_awaitable, ec));
        if (!ec) ok = (co_await ex.WriteStream(": keep-alive\n\n")).ok();
        continue;
      }
      std::string out;
      for (auto& m : batch) out += m;
      ok = (co_await ex.WriteStream(out)).ok();
    }
    done();
    if (ok) (void)co_await ex.EndStream();
    ex.CloseAfterResponse();
  }

  // ---- tus ----
  http::Headers TusHeaders() { return {{"Tus-Resumable", std::string(upload::kTusVersion)}}; }

  Response TusError(int status, std::string_view code, std::string_view message) {
    auto r = http::JsonError(status, code, message);
    r.headers.emplace_back("Tus-Resumable", std::string(upload::kTusVersion));
    r.headers.emplace_back("Cache-Control", "no-store");
    return r;
  }

  Response TusError(const Error& e) {
    int status = StatusFor(e.code);
    return TusError(status, CodeName(status), e.message);
  }

  // 412 when the client speaks another tus version.
  asio::awaitable<bool> CheckTusVersion(Exchange& ex) {
    auto v = ex.request().header("Tus-Resumable");
    if (v && *v == upload::kTusVersion) co_return true;
    auto r = TusError(412, "precondition_failed",
                      v ? "This server speaks tus 1.0.0 only." : "The Tus-Resumable header is missing.");
    r.headers.emplace_back("Tus-Version", std::string(upload::kTusVersion));
    ex.CloseAfterResponse();
    co_await ex.Send(std::move(r));
    co_return false;
  }

  asio::awaitable<void> TusOptions(Exchange& ex) {
    http::Headers h = {{"Tus-Resumable", std::string(upload::kTusVersion)},
                                {"Tus-Version", std::string(upload::kTusVersion)},
                                {"Tus-Extension", std::string(upload::kTusExtensions)},
                                {"Tus-Max-Size", std::to_string(s_.uploads.options().max_size_bytes)},
                                {"Tus-Checksum-Algorithm", std::string(upload::kTusChecksumAlgorithms)},
                                {"Access-Control-Max-Age", "86400"}};
    co_await ex.Send(NoContent(std::move(h)));
  }

  std::string Expires(int64_t ms) { return FormatHttpDate(ms / 1000); }

  asio::awaitable<void> TusCreate(Exchange& ex) {
    if (!co_await CheckTusVersion(ex)) co_return;
    const auto& req = ex.request();
    if (req.header("Upload-Defer-Length")) {
      co_await ex.Send(TusError(400, "bad_request", "Upload-Defer-Length is not supported; send Upload-Length."));
      co_return;
    }
    auto length_header = req.header("Upload-Length");
    if (!length_header) {
      co_await ex.Send(TusError(400, "bad_request", "Upload-Length is required."));
      co_return;
    }
    auto length = upload::ParseUint(*length_header, "Upload-Length");
    if (!length) {
      co_await ex.Send(TusError(length.error()));
      co_return;
    }
    if (*length > s_.uploads.options().max_size_bytes) {
      ex.CloseAfterResponse();
      co_await ex.Send(TusError(413, "too_large",
                                "Upload-Length is over the maximum of " +
                                    std::to_string(s_.uploads.options().max_size_bytes) +
                                    " bytes (MAX_UPLOAD_SIZE_MB)."));
      co_return;
    }
    auto md = upload::ParseMetadata(req.header("Upload-Metadata").value_or(""));
    if (!md) {
      co_await ex.Send(TusError(md.error()));
      co_return;
    }
    auto get = [&](const char* k) -> std::string {
      auto it = md->find(k);
      return it == md->end() ? "" : it->second;
    };
    std::string filename = BaseName(get("filename"));
    for (const std::string& text : {filename, get("title"), get("description"), get("filetype")}) {
      if (!IsValidUtf8(text)) {
        co_await ex.Send(TusError(400, "bad_request", "Upload-Metadata values must be UTF-8 text."));
        co_return;
      }
    }
    bool with_body = req.content_length().value_or(0) > 0 || req.chunked();
    if (with_body && req.header("Content-Type") != std::optional<std::string_view>("application/offset+octet-stream")) {
      co_await ex.Send(TusError(415, "unsupported_media_type",
                                "A creation request with a body needs Content-Type: application/offset+octet-stream."));
      co_return;
    }
    catalog::NewVideo nv;
    nv.id = NewId(s_.clock.NowUnixMillis());
    nv.title = TitleFor(get("title"), filename);
    nv.description = TruncateUtf8(get("description"), catalog::kMaxDescriptionBytes);
    nv.original_name = filename;
    nv.content_type = ContentTypeOf(get("filetype"), filename);
    nv.size = *length;
    std::map<std::string, std::string> metadata = *md;
    auto work6 = [this, nv, metadata, length = *length]() -> Result<upload::UploadStatus> {
      HUB_TRY(s_.videos.Create(nv));
      auto st = s_.uploads.Create(nv.id, length, metadata);
      if (!st) (void)s_.videos_store.RemoveAll(nv.id);
      return st;
    };
    auto status = co_await OffThread(s_.blocking, std::move(work6));
    if (!status) {
      co_await ex.Send(TusError(status.error()));
      co_return;
    }
    http::Headers h = TusHeaders();
    h.emplace_back("Location", "/files/" + nv.id);
    h.emplace_back("Cache-Control", "no-store");
    uint64_t offset = 0;
    if (with_body) {
      auto written = co_await ReceiveChunk(ex, nv.id, 0);
      if (!written) {
        // The upload exists; the client can HEAD and resume. Report the error.
        auto r = TusError(written.error());
        r.headers.emplace_back("Location", "/files/" + nv.id);
        co_await ex.Send(std::move(r));
        co_return;
      }
      offset = written->offset;
      h.emplace_back("Upload-Offset", std::to_string(offset));
      if (written->complete) {
        co_await Completed(nv.id, written->length);
      } else {
        h.emplace_back("Upload-Expires", Expires(written->expires_at_ms));
      }
    } else if (status->complete) {
      co_await Completed(nv.id, 0);
    } else {
      h.emplace_back("Upload-Expires", Expires(status->expires_at_ms));
    }
    RefreshVideo(s_, nv.id);
    Response r;
    r.status = 201;
    r.headers = std::move(h);
    co_await ex.Send(std::move(r));
  }

  asio::awaitable<void> TusHead(Exchange& ex) {
    if (!co_await CheckTusVersion(ex)) co_return;
    std::string id(ex.request().param("id"));
    auto work7 = [this, id] { return s_.uploads.Status(id); };
    auto st = co_await OffThread(s_.blocking, std::move(work7));
    if (!st) {
      co_await ex.Send(TusError(st.error()));
      co_return;
    }
    http::Headers h = TusHeaders();
    h.emplace_back("Upload-Offset", std::to_string(st->offset));
    h.emplace_back("Upload-Length", std::to_string(st->length));
    h.emplace_back("Cache-Control", "no-store");
    if (!st->complete) h.emplace_back("Upload-Expires", Expires(st->expires_at_ms));
    if (!st->metadata.empty()) {
      std::string md;
      for (const auto& [k, v] : st->metadata) {
        if (!md.empty()) md += ",";
        md += k;
        if (!v.empty()) md += " " + upload::Base64Encode(v);
      }
      h.emplace_back("Upload-Metadata", md);
    }
    Response r;
    r.status = 200;
    r.headers = std::move(h);
    co_await ex.Send(std::move(r));
  }

  asio::awaitable<void> TusPatch(Exchange& ex) {
    if (!co_await CheckTusVersion(ex)) co_return;
    const auto& req = ex.request();
    if (req.header("Content-Type") != std::optional<std::string_view>("application/offset+octet-stream")) {
      ex.CloseAfterResponse();
      co_await ex.Send(TusError(415, "unsupported_media_type", "PATCH needs Content-Type: application/offset+octet-stream."));
      co_return;
    }
    auto offset_header = req.header("Upload-Offset");
    if (!offset_header) {
      ex.CloseAfterResponse();
      co_await ex.Send(TusError(400, "bad_request", "Upload-Offset is required."));
      co_return;
    }
    auto offset = upload::ParseUint(*offset_header, "Upload-Offset");
    if (!offset) {
      ex.CloseAfterResponse();
      co_await ex.Send(TusError(offset.error()));
      co_return;
    }
    std::string id(req.param("id"));
    auto st = co_await ReceiveChunk(ex, id, *offset);
    if (!st) {
      co_await ex.Send(TusError(st.error()));
      co_return;
    }
    if (st->complete) co_await Completed(id, st->length);
    http::Headers h = TusHeaders();
    h.emplace_back("Upload-Offset", std::to_string(st->offset));
    if (!st->complete) h.emplace_back("Upload-Expires", Expires(st->expires_at_ms));
    co_await ex.Send(NoContent(std::move(h)));
  }

  asio::awaitable<void> TusDelete(Exchange& ex) {
    if (!co_await CheckTusVersion(ex)) co_return;
    std::string id(ex.request().param("id"));
    auto work8 = [this, id]() -> Result<void> {
      auto t = s_.uploads.Terminate(id);
      if (!t && !s_.videos.Get(id).ok()) return t;
      (void)s_.videos.MarkDeleted(id);
      if (s_.on_video_deleted) s_.on_video_deleted(id);
      return Ok();
    };
    auto r = co_await OffThread(s_.blocking, std::move(work8));
    if (!r) {
      co_await ex.Send(TusError(r.error()));
      co_return;
    }
    RefreshVideo(s_, id);
    co_await ex.Send(NoContent(TusHeaders()));
  }

  // X-HTTP-Method-Override for clients behind proxies that allow only POST.
  asio::awaitable<void> TusOverride(Exchange& ex) {
    auto m = ex.request().header("X-HTTP-Method-Override").value_or("");
    if (m == "PATCH") co_return co_await TusPatch(ex);
    if (m == "DELETE") co_return co_await TusDelete(ex);
    if (m == "HEAD") co_return co_await TusHead(ex);
    co_await ex.Send(TusError(405, "method_not_allowed", "POST to an upload needs X-HTTP-Method-Override."));
  }

  // Streams the request body into a chunk at `offset` and commits it.
  asio::awaitable<Result<upload::UploadStatus>> ReceiveChunk(Exchange& ex, const std::string& id, uint64_t offset) {
    const auto& req = ex.request();
    std::optional<upload::ChecksumSpec> sum;
    if (auto c = req.header("Upload-Checksum")) {
      auto parsed = upload::ParseChecksum(*c);
      if (!parsed) {
        ex.CloseAfterResponse();
        co_return parsed.error();
      }
      sum = std::move(*parsed);
    }
    auto work9 = [this, id, offset, sum, len = req.content_length()] {
      return s_.uploads.BeginChunk(id, offset, sum, len);
    };
    auto chunk = co_await OffThread(s_.blocking, std::move(work9));
    if (!chunk) {
      ex.CloseAfterResponse();
      co_return chunk.error();
    }
    ++uploads_in_flight_;
    struct Gauge {
      std::atomic<int64_t>& g;
      ~Gauge() { --g; }
    } gauge{uploads_in_flight_};
    std::vector<char> buf(kBodyBuffer);
    upload::Chunk& c = **chunk;
    for (;;) {
      auto n = co_await ex.ReadSome(buf);
      if (!n) {
        // The client went away or stalled: keep what arrived (tus).
        auto work10 = [&c] { return c.CommitReceived(); };
        auto kept = co_await OffThread(s_.blocking, std::move(work10));
        ex.CloseAfterResponse();
        if (!kept) co_return kept.error();
        co_return n.error();
      }
      if (*n == 0) break;
      if (auto w = c.Write(std::span<const char>(buf.data(), *n)); !w) {
        ex.CloseAfterResponse();
        if (w.code() == upload::errc::no_space) {
          // Keep what fitted; the upload resumes when space is freed.
          auto work11 = [&c] { return c.CommitReceived(); };
          (void)co_await OffThread(s_.blocking, std::move(work11));
        }
        co_return w.error();
      }
      upload_bytes_ += static_cast<int64_t>(*n);
      c.Heartbeat();
    }
    auto work12 = [&c] { return c.Commit(); };
    co_return co_await OffThread(s_.blocking, std::move(work12));
  }

  // The upload is whole: the video becomes ready (its original plays through
  // range requests) and the media pipeline takes it (media_status "queued").
  asio::awaitable<void> Completed(const std::string& id, uint64_t size) {
    auto work13 = [this, id, size] {
      catalog::VideoPatch p;
      p.status = catalog::VideoStatus::kReady;
      p.size = size;
      auto r = s_.videos.Update(id, p);
      if (r && s_.on_upload_complete) s_.on_upload_complete(id);
      return r;
    };
    (void)co_await OffThread(s_.blocking, std::move(work13));
    RefreshVideo(s_, id);
  }

  // ---- web UI ----
  asio::awaitable<void> SendAsset(Exchange& ex, const webui::Asset& a, std::string cache) {
    if (auto inm = ex.request().header("If-None-Match"); inm && *inm == a.etag) {
      Response r;
      r.status = 304;
      r.headers = {{"ETag", std::string(a.etag)}, {"Cache-Control", cache}};
      co_await ex.Send(std::move(r));
      co_return;
    }
    Response r;
    r.headers = {{"Content-Type", std::string(a.content_type)},
                 {"ETag", std::string(a.etag)},
                 {"Cache-Control", std::move(cache)},
                 {"X-Content-Type-Options", "nosniff"}};
    if (a.content_type.rfind("text/html", 0) == 0) {
      r.headers.emplace_back("Content-Security-Policy",
                             "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
                             "style-src 'self'; frame-ancestors 'none'");
      r.headers.emplace_back("Referrer-Policy", "same-origin");
    }
    r.body = std::string(a.body);
    co_await ex.Send(std::move(r));
  }

  asio::awaitable<void> Page(Exchange& ex) {
    const webui::Asset* a = webui::FindAsset("/static/index.html");
    if (!a) {
      co_await ex.Send(http::JsonError(500, "internal", "The web UI is missing from this build."));
      co_return;
    }
    co_await SendAsset(ex, *a, "no-cache");
  }

  asio::awaitable<void> SignInPage(Exchange& ex) {
    if (auto token = ex.request().query("token")) {
      std::string cookie = s_.access.SignIn(*token);
      if (!cookie.empty()) {
        Response r;
        r.status = 303;
        r.headers = {{"Location", "/"}, {"Set-Cookie", cookie}, {"Cache-Control", "no-store"}};
        co_await ex.Send(std::move(r));
        co_return;
      }
    }
    co_await Page(ex);
  }

  asio::awaitable<void> Static(Exchange& ex) {
    const webui::Asset* a = webui::FindAsset(ex.request().path());
    if (!a) {
      co_await ex.Send(http::JsonError(404, "not_found", "No such file."));
      co_return;
    }
    co_await SendAsset(ex, *a, "no-cache");
  }

  // ---- helpers ----
  // Reads a bounded JSON body; on failure answers (400/413) and returns nullopt.
  asio::awaitable<std::optional<json>> ReadJson(Exchange& ex) {
    auto body = co_await ex.ReadAll(o_.max_json_bytes);
    if (!body) {
      ex.CloseAfterResponse();
      if (body.code() == http::errc::body_too_large) {
        co_await ex.Send(http::JsonError(413, "too_large", "The JSON body is over " +
                                                               std::to_string(o_.max_json_bytes / 1024) + " KiB."));
      }
      co_return std::nullopt;
    }
    auto parsed = json::parse(*body, nullptr, /*allow_exceptions=*/false);
    if (parsed.is_discarded()) {
      co_await ex.Send(http::JsonError(400, "bad_request", "The body is not valid JSON."));
      co_return std::nullopt;
    }
    co_return parsed;
  }

  Services s_;
  ApiOptions o_;
  std::atomic<int64_t>& uploads_in_flight_;
  std::atomic<int64_t>& upload_bytes_;
  std::atomic<int64_t>& sse_clients_;
  std::mutex mu_;
  std::map<std::string, std::string> content_types_;
  std::vector<std::weak_ptr<Listener>> listeners_;
  int bus_token_ = 0;
  bool ending_ = false;
};

void EndStreams(Api& api) { api.EndStreams(); }

std::shared_ptr<Api> AddRoutes(http::Router& router, Services services, ApiOptions options) {
  auto api = std::make_shared<Api>(services, std::move(options));
  api->Register(router);
  return api;
}

}  // namespace hub::api
