#include "api/notes_api.h"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <vector>

#include "api/common.h"
#include "core/ids.h"
#include "http/websocket.h"
#include "notes/edits_json.h"
#include "notes/log.h"

namespace hub::api {

namespace asio = boost::asio;
using json = nlohmann::json;
using detail::IsValidUtf8;
using detail::Json;
using detail::NoContent;
using detail::OffThread;
using detail::TruncateUtf8;
using http::Exchange;
using http::Response;

namespace {

constexpr size_t kMaxAuthorBytes = 64;
constexpr int kMaxBadMessages = 20;
constexpr int kMaxThrottledMessages = 2'000;  // in a row: a client that keeps flooding is closed

const char* const kColors[] = {"#d9480f", "#1971c2", "#2f9e44", "#9c36b5", "#e67700", "#0c8599",
                               "#c2255c", "#5f3dc4", "#087f5b", "#a61e4d", "#364fc7", "#5c940d"};

// HTTP status and error code for an error of the notepad, the CRDT or storage.
std::pair<int, std::string> StatusOf(const std::error_code& code) {
  if (code.category() == notes::category()) {
    switch (static_cast<notes::errc>(code.value())) {
      case notes::errc::bad_position: return {400, "bad_position"};
      case notes::errc::bad_delete: return {400, "bad_delete"};
      case notes::errc::bad_utf8: return {400, "bad_utf8"};
      case notes::errc::bad_version: return {400, "bad_version"};
      case notes::errc::unknown_version: return {409, "unknown_version"};
      case notes::errc::too_large: return {413, "too_large"};
      case notes::errc::too_many_pending: return {503, "busy"};
      case notes::errc::bad_encoding: return {500, "internal"};
      case notes::errc::bad_agent: return {500, "internal"};
    }
  }
  if (code.category() == notes::notepad_category()) {
    switch (static_cast<notes::notepad_errc>(code.value())) {
      case notes::notepad_errc::not_found: return {404, "not_found"};
      case notes::notepad_errc::bad_title: return {400, "bad_title"};
      case notes::notepad_errc::stale: return {409, "stale"};
      case notes::notepad_errc::deleted: return {409, "deleted"};
      case notes::notepad_errc::gone: return {410, "gone"};
      case notes::notepad_errc::bad_uid: return {400, "bad_uid"};
    }
  }
  if (code == storage::errc::no_space) return {507, "no_space"};
  return {500, "internal"};
}

Response ErrorResponse(const Error& e) {
  auto [status, code] = StatusOf(e.code);
  return http::JsonError(status, code, e.message);
}

json NoteJson(const notes::NoteInfo& n, const std::string* text) {
  json j = {{"id", n.id},
            {"title", n.title},
            {"size", n.size},
            {"length", n.length},
            {"version", n.version},
            {"created_at", FormatRfc3339(n.created_ms * 1'000'000)},
            {"updated_at", FormatRfc3339(n.updated_ms * 1'000'000)},
            {"updated_by", n.updated_by},
            {"deleted", n.deleted}};
  if (n.deleted) j["deleted_at"] = FormatRfc3339(n.deleted_ms * 1'000'000);
  if (text) j["text"] = *text;
  return j;
}

std::string AuthorOf(const json& body, const Principal& p) {
  if (body.is_object() && body.contains("author") && body["author"].is_string()) {
    std::string a = TruncateUtf8(body["author"].get<std::string>(), kMaxAuthorBytes);
    if (!a.empty() && IsValidUtf8(a)) return a;
  }
  return p.name.empty() ? "anonymous" : p.name;
}

// A file name for Content-Disposition: the title with anything unusual replaced.
std::string FileNameOf(std::string_view title, std::string_view ext) {
  std::string out;
  for (char c : title) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
              c == '_' || c == '.' || c == ' ';
    out.push_back(ok ? c : '_');
    if (out.size() >= 80) break;
  }
  while (!out.empty() && (out.front() == '.' || out.front() == ' ')) out.erase(out.begin());
  if (out.empty()) out = "note";
  return out + "." + std::string(ext);
}

}  // namespace

// One open WebSocket on a note.
struct NoteSession {
  std::string id, name, color, agent;
  bool can_edit = false;
  std::shared_ptr<http::WebSocket> ws;
  // Guarded by NotesApi::mu_.
  bool ready = false;  // init sent; updates go out directly
  struct Held {
    std::string from, msg;
  };
  std::vector<Held> held;  // updates that arrived while joining
  int64_t anchor = -1, head = -1;
};

class NotesApi : public std::enable_shared_from_this<NotesApi> {
 public:
  NotesApi(NotesServices s, NotesOptions o)
      : s_(s),
        o_(std::move(o)),
        sessions_(s.metrics.Gauge("hub_notes_sessions", {}, "Open notepad WebSockets.")),
        edits_(s.metrics.Counter("hub_notes_edit_requests_total", {}, "Accepted notepad edit requests.")),
        throttled_(s.metrics.Counter("hub_notes_throttled_messages_total", {},
                                     "Notepad WebSocket messages delayed by the rate limit.")) {}

  void Register(http::Router& r) {
    auto self = shared_from_this();
    auto bind = [self](auto method) {
      return [self, method](Exchange& ex) -> asio::awaitable<void> { co_await ((*self).*method)(ex); };
    };
    if (!o_.enabled || !s_.notepad) {
      for (const char* m : {"GET", "POST", "PATCH", "DELETE", "PUT"}) {
        r.Add(m, "/api/notes", bind(&NotesApi::Disabled));
        r.Add(m, "/api/notes/{rest...}", bind(&NotesApi::Disabled));
      }
      return;
    }
    std::weak_ptr<NotesApi> weak = self;
    s_.notepad->AddListener([weak](const notes::NoteChange& c) {
      if (auto api = weak.lock()) api->OnChange(c);
    });
    auto writer = [this, bind](auto method) { return RequireWriter(s_.access, bind(method)); };
    r.Add("GET", "/api/notes", bind(&NotesApi::List));
    r.Add("POST", "/api/notes", writer(&NotesApi::Create));
    r.Add("GET", "/api/notes/{id}", bind(&NotesApi::Get));
    r.Add("PATCH", "/api/notes/{id}", writer(&NotesApi::Rename));
    r.Add("DELETE", "/api/notes/{id}", writer(&NotesApi::Delete));
    r.Add("POST", "/api/notes/{id}/restore", writer(&NotesApi::Restore));
    r.Add("POST", "/api/notes/{id}/edits", writer(&NotesApi::Edits));
    r.Add("GET", "/api/notes/{id}/changes", bind(&NotesApi::Changes));
    r.Add("GET", "/api/notes/{id}/history", bind(&NotesApi::History));
    r.Add("GET", "/api/notes/{id}/text", bind(&NotesApi::TextAt));
    r.Add("POST", "/api/notes/{id}/revert", writer(&NotesApi::Revert));
    r.Add("GET", "/api/notes/{id}/export", bind(&NotesApi::Export));
    r.Add("GET", "/api/notes/{id}/ws", bind(&NotesApi::Socket));
  }

  void EndSessions() {
    std::lock_guard lock(mu_);
    ending_ = true;
    for (auto& [id, room] : rooms_) {
      for (auto& s : room) s->ws->Close(1001, "the server is shutting down");
    }
  }

 private:
  using Session = NoteSession;

  // ---- REST ----
  asio::awaitable<void> Disabled(Exchange& ex) {
    co_await ex.Send(http::JsonError(404, "notepad_disabled",
                                     "The community notepad is turned off on this hub "
                                     "(COMMUNITY_NOTEPAD_ENABLED=false)."));
  }

  size_t MaxBody() const { return static_cast<size_t>(o_.max_note_bytes * 2 + (1 << 20)); }

  // The JSON body, or nullopt after answering 400/413.
  asio::awaitable<std::optional<json>> ReadJson(Exchange& ex, size_t max_bytes) {
    auto body = co_await ex.ReadAll(max_bytes);
    if (!body) {
      ex.CloseAfterResponse();
      if (body.code() == http::errc::body_too_large) {
        co_await ex.Send(http::JsonError(413, "too_large",
                                         "The request body is over " + std::to_string(max_bytes >> 10) +
                                             " KiB; a note may hold at most " +
                                             std::to_string(o_.max_note_bytes >> 20) + " MiB."));
      }
      co_return std::nullopt;
    }
    auto parsed = json::parse(*body, nullptr, /*allow_exceptions=*/false);
    if (parsed.is_discarded() || !parsed.is_object()) {
      co_await ex.Send(http::JsonError(400, "bad_json",
                                       "The body must be a JSON object in UTF-8 (no lone surrogates)."));
      co_return std::nullopt;
    }
    co_return parsed;
  }

  // The {id} parameter if it can name a note; otherwise answers 404.
  asio::awaitable<std::optional<std::string>> NoteId(Exchange& ex) {
    std::string id(ex.request().param("id"));
    if (!IsValidId(id)) {
      co_await ex.Send(http::JsonError(404, "not_found", "No note has this id."));
      co_return std::nullopt;
    }
    co_return id;
  }

  asio::awaitable<void> List(Exchange& ex) {
    const auto& req = ex.request();
    std::string q(req.query("q").value_or(""));
    if (q.size() > 200 || !IsValidUtf8(q)) {
      co_await ex.Send(http::JsonError(400, "bad_request", "q must be UTF-8 text of at most 200 bytes"));
      co_return;
    }
    size_t limit = 100;
    if (auto l = req.query("limit")) {
      char* end = nullptr;
      std::string ls(*l);
      long v = std::strtol(ls.c_str(), &end, 10);
      if (ls.empty() || *end || v < 1 || v > 1000) {
        co_await ex.Send(http::JsonError(400, "bad_request", "limit must be an integer 1..1000"));
        co_return;
      }
      limit = static_cast<size_t>(v);
    }
    bool deleted = req.query("deleted").value_or("") == "1";
    auto notes = s_.notepad->List(q, deleted);
    json items = json::array();
    for (size_t i = 0; i < notes.size() && i < limit; ++i) items.push_back(NoteJson(notes[i], nullptr));
    json body = {{"notes", items}, {"total", notes.size()}};
    co_await ex.Send(Json(200, body));
  }

  asio::awaitable<void> Create(Exchange& ex) {
    auto body = co_await ReadJson(ex, MaxBody());
    if (!body) co_return;
    if (!(*body)["title"].is_string() || (body->contains("text") && !(*body)["text"].is_string())) {
      co_await ex.Send(http::JsonError(400, "bad_request", "Send {\"title\": \"...\", \"text\"?: \"...\"}."));
      co_return;
    }
    std::string title = (*body)["title"].get<std::string>();
    std::string text = body->contains("text") ? (*body)["text"].get<std::string>() : "";
    std::string author = AuthorOf(*body, s_.access.Authenticate(ex.request()));
    body.reset();
    auto work = [this, title = std::move(title), text = std::move(text), author] {
      return s_.notepad->Create(title, text, author);
    };
    auto n = co_await OffThread(s_.blocking, std::move(work));
    if (!n) {
      co_await ex.Send(ErrorResponse(n.error()));
      co_return;
    }
    std::string t;
    (void)s_.notepad->Get(n->id, &t);
    Response r = Json(201, NoteJson(*n, &t));
    r.headers.emplace_back("Location", "/api/notes/" + n->id);
    co_await ex.Send(std::move(r));
  }

  asio::awaitable<void> Get(Exchange& ex) {
    auto id = co_await NoteId(ex);
    if (!id) co_return;
    std::string text;
    bool deleted = ex.request().query("deleted").value_or("") == "1";
    auto n = s_.notepad->Get(*id, &text, deleted);
    if (!n) {
      co_await ex.Send(ErrorResponse(n.error()));
      co_return;
    }
    co_await ex.Send(Json(200, NoteJson(*n, &text)));
  }

  asio::awaitable<void> Rename(Exchange& ex) {
    auto id = co_await NoteId(ex);
    if (!id) co_return;
    auto body = co_await ReadJson(ex, 64 * 1024);
    if (!body) co_return;
    if (!(*body)["title"].is_string()) {
      co_await ex.Send(http::JsonError(400, "bad_request", "Send {\"title\": \"...\"}: only the title can be changed."));
      co_return;
    }
    std::string title = (*body)["title"].get<std::string>();
    std::string author = AuthorOf(*body, s_.access.Authenticate(ex.request()));
    auto work = [this, id = *id, title, author] { return s_.notepad->Rename(id, title, author); };
    auto n = co_await OffThread(s_.blocking, std::move(work));
    if (!n) {
      co_await ex.Send(ErrorResponse(n.error()));
      co_return;
    }
    co_await ex.Send(Json(200, NoteJson(*n, nullptr)));
  }

  asio::awaitable<void> Delete(Exchange& ex) {
    auto id = co_await NoteId(ex);
    if (!id) co_return;
    std::string author = s_.access.Authenticate(ex.request()).name;
    auto work = [this, id = *id, author] { return s_.notepad->Delete(id, author); };
    auto r = co_await OffThread(s_.blocking, std::move(work));
    if (!r) {
      co_await ex.Send(ErrorResponse(r.error()));
      co_return;
    }
    co_await ex.Send(NoContent());
  }

  asio::awaitable<void> Restore(Exchange& ex) {
    auto id = co_await NoteId(ex);
    if (!id) co_return;
    std::string author = s_.access.Authenticate(ex.request()).name;
    auto work = [this, id = *id, author] { return s_.notepad->Restore(id, author); };
    auto n = co_await OffThread(s_.blocking, std::move(work));
    if (!n) {
      co_await ex.Send(ErrorResponse(n.error()));
      co_return;
    }
    co_await ex.Send(Json(200, NoteJson(*n, nullptr)));
  }

  asio::awaitable<void> Edits(Exchange& ex) {
    auto id = co_await NoteId(ex);
    if (!id) co_return;
    auto body = co_await ReadJson(ex, MaxBody());
    if (!body) co_return;
    if (!(*body)["base"].is_string()) {
      co_await ex.Send(http::JsonError(400, "bad_version",
                                       "`base` must be the `version` string of the note you edited."));
      co_return;
    }
    auto base = notes::Version::Decode((*body)["base"].get<std::string>());
    if (!base) {
      co_await ex.Send(ErrorResponse(base.error()));
      co_return;
    }
    auto edits = notes::ParseEditsJson((*body)["edits"]);
    if (!edits) {
      co_await ex.Send(http::JsonError(400, "bad_edit", edits.error().message));
      co_return;
    }
    auto uid = UidOf(*body);
    if (!uid) {
      co_await ex.Send(ErrorResponse(uid.error()));
      co_return;
    }
    std::string author = AuthorOf(*body, s_.access.Authenticate(ex.request()));
    body.reset();
    auto out = co_await ApplyWithPoll(*id, std::move(*base), std::move(*edits), author, std::move(*uid));
    if (!out) {
      co_await ex.Send(ErrorResponse(out.error()));
      co_return;
    }
    json j = {{"version", out->version.Encode()}, {"size", out->size}, {"length", out->length}};
    if (out->duplicate) {
      j["duplicate"] = true;
    } else {
      ++edits_;
    }
    co_await ex.Send(Json(200, j));
  }

  // The optional idempotency key `uid` of an edit request ("" when absent).
  static Result<std::string> UidOf(const json& msg) {
    if (!msg.contains("uid") || msg["uid"].is_null()) return std::string();
    if (msg["uid"].is_string()) {
      std::string uid = msg["uid"].get<std::string>();
      if (notes::IsValidUid(uid)) return uid;
    }
    return MakeError(make_error_code(notes::notepad_errc::bad_uid),
                     "`uid` must be a string of 1 to 64 printable ASCII characters without spaces.");
  }

  // ApplyEdits off the network thread; a base this node has not seen yet
  // (another node's edits still unread) triggers a poll of the note and one retry.
  // `poll_first`: read the other nodes' logs before (a retry whose uid another
  // node may have applied).
  asio::awaitable<Result<notes::EditOutcome>> ApplyWithPoll(std::string id, notes::Version base,
                                                           std::vector<notes::Edit> edits, std::string author,
                                                           std::string uid = {}, bool poll_first = false) {
    auto work = [this, id, base, edits = std::move(edits), author, uid, poll_first]() {
      if (poll_first) s_.notepad->PollNote(id);
      auto r = s_.notepad->ApplyEdits(id, base, edits, author, false, {}, {}, uid);
      if (!r && r.code() == notes::errc::unknown_version) {
        s_.notepad->PollNote(id);
        r = s_.notepad->ApplyEdits(id, base, edits, author, false, {}, {}, uid);
      }
      return r;
    };
    co_return co_await OffThread(s_.blocking, std::move(work));
  }

  asio::awaitable<void> Changes(Exchange& ex) {
    auto id = co_await NoteId(ex);
    if (!id) co_return;
    auto since = notes::Version::Decode(ex.request().query("since").value_or(""));
    if (!since) {
      co_await ex.Send(ErrorResponse(since.error()));
      co_return;
    }
    notes::Version current;
    auto c = s_.notepad->ChangesSince(*id, *since, &current);
    if (!c) {
      co_await ex.Send(ErrorResponse(c.error()));
      co_return;
    }
    json body = {{"version", current.Encode()}, {"edits", notes::EditsToJson(*c)}};
    co_await ex.Send(Json(200, body));
  }

  asio::awaitable<void> History(Exchange& ex) {
    auto id = co_await NoteId(ex);
    if (!id) co_return;
    auto h = s_.notepad->History(*id);
    if (!h) {
      co_await ex.Send(ErrorResponse(h.error()));
      co_return;
    }
    json a = json::array();
    for (const auto& r : *h) {
      a.push_back({{"at", FormatRfc3339(r.at_ms * 1'000'000)},
                   {"author", r.author},
                   {"node", r.node},
                   {"size", r.size},
                   {"version", r.version}});
    }
    json body = {{"revisions", a}};
    co_await ex.Send(Json(200, body));
  }

  asio::awaitable<void> TextAt(Exchange& ex) {
    auto id = co_await NoteId(ex);
    if (!id) co_return;
    auto v = notes::Version::Decode(ex.request().query("version").value_or(""));
    if (!v) {
      co_await ex.Send(ErrorResponse(v.error()));
      co_return;
    }
    auto t = s_.notepad->TextAt(*id, *v);
    if (!t) {
      co_await ex.Send(ErrorResponse(t.error()));
      co_return;
    }
    json body = {{"version", v->Encode()}, {"text", *t}};
    co_await ex.Send(Json(200, body));
  }

  asio::awaitable<void> Revert(Exchange& ex) {
    auto id = co_await NoteId(ex);
    if (!id) co_return;
    auto body = co_await ReadJson(ex, 64 * 1024);
    if (!body) co_return;
    if (!(*body)["version"].is_string()) {
      co_await ex.Send(http::JsonError(400, "bad_version", "Send {\"version\": \"...\"} of a revision."));
      co_return;
    }
    auto v = notes::Version::Decode((*body)["version"].get<std::string>());
    if (!v) {
      co_await ex.Send(ErrorResponse(v.error()));
      co_return;
    }
    std::string author = AuthorOf(*body, s_.access.Authenticate(ex.request()));
    auto work = [this, id = *id, v = *v, author] { return s_.notepad->RestoreRevision(id, v, author); };
    auto out = co_await OffThread(s_.blocking, std::move(work));
    if (!out) {
      co_await ex.Send(ErrorResponse(out.error()));
      co_return;
    }
    json j = {{"version", out->version.Encode()}, {"size", out->size}, {"length", out->length}};
    co_await ex.Send(Json(200, j));
  }

  asio::awaitable<void> Export(Exchange& ex) {
    auto id = co_await NoteId(ex);
    if (!id) co_return;
    std::string format(ex.request().query("format").value_or("txt"));
    if (format != "txt" && format != "md") {
      co_await ex.Send(http::JsonError(400, "bad_request", "format must be txt or md"));
      co_return;
    }
    std::string text;
    auto n = s_.notepad->Get(*id, &text);
    if (!n) {
      co_await ex.Send(ErrorResponse(n.error()));
      co_return;
    }
    Response r;
    r.headers.emplace_back("Content-Type", format == "md" ? "text/markdown; charset=utf-8" : "text/plain; charset=utf-8");
    r.headers.emplace_back("Content-Disposition", "attachment; filename=\"" + FileNameOf(n->title, format) + "\"");
    r.headers.emplace_back("Cache-Control", "no-store");
    r.headers.emplace_back("X-Content-Type-Options", "nosniff");
    r.body = std::move(text);
    co_await ex.Send(std::move(r));
  }

  // ---- WebSocket ----

  static bool SameOrigin(const http::Request& req) {
    auto origin = req.header("Origin");
    if (!origin) return true;  // not a browser
    auto host = req.header("Host");
    if (!host) return false;
    std::string_view o = *origin;
    size_t scheme = o.find("://");
    if (scheme == std::string_view::npos) return false;
    return o.substr(scheme + 3) == *host;
  }

  asio::awaitable<void> Socket(Exchange& ex) {
    auto id = co_await NoteId(ex);
    if (!id) co_return;
    if (!SameOrigin(ex.request())) {
      co_await ex.Send(http::JsonError(403, "forbidden", "Open the note from this hub's own pages."));
      co_return;
    }
    auto exists = s_.notepad->Get(*id, nullptr);
    if (!exists) {
      co_await ex.Send(ErrorResponse(exists.error()));
      co_return;
    }
    auto session = std::make_shared<Session>();
    session->id = "s" + RandomHex(4);
    session->can_edit = s_.access.Authenticate(ex.request()).authenticated;
    session->agent = o_.node_id + "~" + session->id;
    {
      std::lock_guard lock(mu_);
      session->color = kColors[next_color_++ % std::size(kColors)];
      if (ending_) co_return;
    }
    http::WebSocketOptions wo;
    wo.max_message_bytes = MaxBody();
    wo.idle_timeout = o_.ws_idle_timeout;
    auto ws = co_await ex.AcceptWebSocket(wo);
    if (!ws) co_return;
    session->ws = std::move(*ws);
    ++sessions_;
    co_await Serve(*id, session);
    Leave(*id, session);
    --sessions_;
  }

  void Post(Session& s, const json& j) { s.ws->Post(j.dump(-1, ' ', false, json::error_handler_t::replace)); }
  void PostError(Session& s, std::string_view code, std::string_view message, const json& id = nullptr) {
    json j = {{"t", "error"}, {"code", code}, {"message", message}};
    if (!id.is_null()) j["id"] = id;
    Post(s, j);
  }

  asio::awaitable<void> Serve(const std::string& note, std::shared_ptr<Session> s) {
    auto exec = co_await asio::this_coro::executor;
    asio::steady_timer timer(exec);
    double tokens = o_.message_burst;
    auto last = std::chrono::steady_clock::now();
    int throttled_in_a_row = 0, bad = 0;
    bool joined = false;
    while (true) {
      auto m = co_await s->ws->Read();
      if (!m) co_return;
      // Token bucket: over the rate, read more slowly; a client that keeps
      // flooding is closed.
      auto now = std::chrono::steady_clock::now();
      tokens = std::min(o_.message_burst,
                        tokens + std::chrono::duration<double>(now - last).count() * o_.messages_per_second);
      last = now;
      if (tokens < 1) {
        ++throttled_;
        if (++throttled_in_a_row > kMaxThrottledMessages) {
          s->ws->Close(1008, "too many messages: slow down");
          co_return;
        }
        auto wait = std::chrono::duration<double>((1 - tokens) / o_.messages_per_second);
        timer.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(wait));
        boost::system::error_code ec;
        co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        now = std::chrono::steady_clock::now();
        tokens += std::chrono::duration<double>(now - last).count() * o_.messages_per_second;
        last = now;
      } else {
        throttled_in_a_row = 0;
      }
      tokens -= 1;

      json msg = json::parse(m->data, nullptr, /*allow_exceptions=*/false);
      std::string type = msg.is_object() && msg["t"].is_string() ? msg["t"].get<std::string>() : "";
      if (type.empty() || (!joined && type != "hello")) {
        PostError(*s, "bad_message", type.empty() ? "Each message is a JSON object with a string field `t`."
                                                  : "The first message must be `hello`.");
        if (++bad > kMaxBadMessages) {
          s->ws->Close(1008, "too many malformed messages");
          co_return;
        }
        continue;
      }
      if (type == "hello") {
        if (joined) {
          PostError(*s, "bad_message", "`hello` is sent once.");
          continue;
        }
        joined = true;
        co_await Hello(note, s, msg);
      } else if (type == "push") {
        co_await Push(note, s, msg);
      } else if (type == "cursor") {
        Cursor(note, s, msg);
      } else if (type == "sync") {
        co_await Init(note, s, nullptr);
      } else {
        PostError(*s, "bad_message", "Unknown message type `" + TruncateUtf8(type, 40) + "`.");
        if (++bad > kMaxBadMessages) {
          s->ws->Close(1008, "too many malformed messages");
          co_return;
        }
      }
    }
  }

  asio::awaitable<void> Hello(const std::string& note, std::shared_ptr<Session> s, const json& msg) {
    if (msg.contains("name") && msg["name"].is_string()) {
      s->name = TruncateUtf8(msg["name"].get<std::string>(), kMaxAuthorBytes);
      if (!IsValidUtf8(s->name)) s->name.clear();
    }
    if (s->name.empty()) s->name = "Guest";
    std::optional<notes::Version> since;
    if (msg.contains("since") && msg["since"].is_string()) {
      auto v = notes::Version::Decode(msg["since"].get<std::string>());
      if (v) since = std::move(*v);
    }
    {
      std::lock_guard lock(mu_);
      rooms_[note].push_back(s);
    }
    // The push that was in flight when the previous connection dropped: applied
    // with its uid (a no-op if it was applied, here or on another instance),
    // then the whole text. `pending` is not taken with it: the client pushes
    // its later edits after init.
    bool inflight = msg.contains("inflight") && !msg["inflight"].is_null();
    if (inflight) {
      co_await HelloInflight(note, s, msg["inflight"]);
      since.reset();
      if (msg.contains("pending") && !msg["pending"].is_null()) {
        PostError(*s, "bad_message", "`pending` is not taken with `inflight`; push those edits after `init`.");
      }
    }
    // Edits made offline on top of `since`: merged first, then the whole text.
    if (!inflight && since && msg.contains("pending") && !msg["pending"].is_null()) {
      auto edits = notes::ParseEditsJson(msg["pending"]);
      if (!edits) {
        PostError(*s, "bad_edit", edits.error().message);
      } else if (!edits->empty() && !s->can_edit) {
        PostError(*s, "unauthorized", "Sign in to edit; your offline edits were not saved.");
      } else if (!edits->empty()) {
        auto out = co_await ApplyWithPoll(note, *since, std::move(*edits), s->name);
        if (!out) {
          auto [status, code] = StatusOf(out.code());
          PostError(*s, code, "Your offline edits could not be merged: " + out.error().message);
        }
      }
      // The client's text is `since` plus its pending edits: only the whole
      // text can bring it to the current state.
      since.reset();
    }
    co_await Init(note, s, since ? &*since : nullptr);
  }

  asio::awaitable<void> HelloInflight(const std::string& note, std::shared_ptr<Session> s, const json& f) {
    if (!f.is_object() || !f.contains("base") || !f["base"].is_string() || !f.contains("edits")) {
      PostError(*s, "bad_message", "`inflight` must be {\"uid\", \"base\", \"edits\"}.");
      co_return;
    }
    auto uid = UidOf(f);
    if (!uid || uid->empty()) {
      PostError(*s, "bad_uid", "`inflight.uid` must be the uid of the push: 1 to 64 printable ASCII characters.");
      co_return;
    }
    auto base = notes::Version::Decode(f["base"].get<std::string>());
    if (!base) {
      PostError(*s, "bad_version", base.error().message);
      co_return;
    }
    auto edits = notes::ParseEditsJson(f["edits"]);
    if (!edits) {
      PostError(*s, "bad_edit", edits.error().message);
      co_return;
    }
    if (edits->empty()) co_return;
    if (!s->can_edit) {
      PostError(*s, "unauthorized", "Sign in to edit; your last edit was not saved.");
      co_return;
    }
    // Poll first: the push may have been applied by another instance.
    auto out = co_await ApplyWithPoll(note, std::move(*base), std::move(*edits), s->name, std::move(*uid),
                                      /*poll_first=*/true);
    if (!out) {
      auto [status, code] = StatusOf(out.code());
      PostError(*s, code, "Your last edit could not be merged: " + out.error().message);
    } else if (!out->duplicate) {
      ++edits_;
    }
  }

  // Sends the state (the whole text, or the edits since `since`), then the
  // updates that arrived meanwhile, and marks the session ready.
  asio::awaitable<void> Init(const std::string& note, std::shared_ptr<Session> s, const notes::Version* since) {
    {
      std::lock_guard lock(mu_);
      s->ready = false;
      s->held.clear();
    }
    json init = {{"t", "init"}, {"session", s->id}, {"color", s->color}, {"name", s->name},
                 {"auto_sync", o_.auto_sync}, {"can_edit", s->can_edit}};
    std::string version;
    bool done = false;
    if (since) {
      notes::Version current;
      auto c = s_.notepad->ChangesSince(note, *since, &current);
      if (!c && c.code() == notes::errc::unknown_version) {
        auto poll = [this, note] {
          s_.notepad->PollNote(note);
          return true;
        };
        co_await OffThread(s_.blocking, std::move(poll));
        c = s_.notepad->ChangesSince(note, *since, &current);
      }
      if (c) {
        version = current.Encode();
        init["edits"] = notes::EditsToJson(*c);
        init["since"] = since->Encode();
        done = true;
      }
    }
    std::string text;
    auto info = s_.notepad->Get(note, done ? nullptr : &text);
    if (!info) {
      auto [status, code] = StatusOf(info.code());
      PostError(*s, code, info.error().message);
      s->ws->Close(1000, "the note is gone");
      co_return;
    }
    if (!done) {
      version = info->version;
      init["text"] = std::move(text);
    }
    init["version"] = version;
    init["title"] = info->title;
    std::lock_guard lock(mu_);
    init["peers"] = PeersLocked(note);
    Post(*s, init);
    // Updates held while joining: those already in `version` are skipped.
    bool on = false;
    for (auto& h : s->held) {
      if (!on && h.from == version) on = true;
      if (on) s->ws->Post(std::move(h.msg));
    }
    s->held.clear();
    s->ready = true;
    BroadcastPresenceLocked(note);
  }

  asio::awaitable<void> Push(const std::string& note, std::shared_ptr<Session> s, const json& msg) {
    json id = msg.contains("id") ? msg["id"] : json(nullptr);
    if (!s->can_edit) {
      PostError(*s, "unauthorized", "Sign in to edit this note.", id);
      co_return;
    }
    if (!msg["base"].is_string()) {
      PostError(*s, "bad_version", "`base` must be a version string.", id);
      co_return;
    }
    auto base = notes::Version::Decode(msg["base"].get<std::string>());
    if (!base) {
      PostError(*s, "bad_version", base.error().message, id);
      co_return;
    }
    auto edits = notes::ParseEditsJson(msg["edits"]);
    if (!edits) {
      PostError(*s, "bad_edit", edits.error().message, id);
      co_return;
    }
    auto uid = UidOf(msg);
    if (!uid) {
      PostError(*s, "bad_uid", uid.error().message, id);
      co_return;
    }
    bool live = o_.auto_sync;
    auto work = [this, note, base = *base, edits = std::move(*edits), s, live, key = std::move(*uid)]() {
      return s_.notepad->ApplyEdits(note, base, edits, s->name, /*require_current=*/live,
                                    live ? std::string_view{} : std::string_view(s->agent), s->id, key);
    };
    auto out = co_await OffThread(s_.blocking, std::move(work));
    if (!out) {
      if (out.code() == notes::notepad_errc::stale) {
        Post(*s, json{{"t", "stale"}, {"id", id}});
      } else {
        auto [status, code] = StatusOf(out.code());
        PostError(*s, code, out.error().message, id);
      }
      co_return;
    }
    if (out->duplicate) {
      // Applied before (an earlier connection): nothing changed, no update
      // follows. The client's view cannot be named: it loads the text again.
      PostError(*s, "duplicate", "This push was applied before; load the note again (`sync`).", id);
      co_return;
    }
    ++edits_;
    if (!live) {
      // The session's own view: its base plus its own edits (its own agent).
      notes::Version mine = *base;
      mine.Set(s->agent, out->version.Count(s->agent));
      Post(*s, json{{"t", "ack"}, {"id", id}, {"version", mine.Encode()}});
    }
    // Live: the update with by = this session (sent by OnChange) confirms it.
  }

  void Cursor(const std::string& note, const std::shared_ptr<Session>& s, const json& msg) {
    auto pos = [&](const char* k) -> int64_t {
      return msg.contains(k) && msg[k].is_number_integer() ? std::max<int64_t>(-1, msg[k].get<int64_t>()) : -1;
    };
    std::lock_guard lock(mu_);
    s->anchor = pos("anchor");
    s->head = pos("head");
    auto it = rooms_.find(note);
    if (it == rooms_.end()) return;
    json j = {{"t", "cursor"}, {"session", s->id}, {"anchor", s->anchor}, {"head", s->head}};
    std::string text = j.dump();
    for (auto& other : it->second) {
      if (other != s && other->ready) other->ws->Post(text);
    }
  }

  void Leave(const std::string& note, const std::shared_ptr<Session>& s) {
    std::lock_guard lock(mu_);
    auto it = rooms_.find(note);
    if (it == rooms_.end()) return;
    std::erase(it->second, s);
    if (it->second.empty()) {
      rooms_.erase(it);
    } else {
      BroadcastPresenceLocked(note);
    }
  }

  json PeersLocked(const std::string& note) {
    json peers = json::array();
    auto it = rooms_.find(note);
    if (it == rooms_.end()) return peers;
    for (auto& p : it->second) {
      peers.push_back({{"session", p->id}, {"name", p->name}, {"color", p->color},
                       {"anchor", p->anchor}, {"head", p->head}});
    }
    return peers;
  }

  void BroadcastPresenceLocked(const std::string& note) {
    auto it = rooms_.find(note);
    if (it == rooms_.end()) return;
    std::string text = json{{"t", "presence"}, {"peers", PeersLocked(note)}}.dump();
    for (auto& p : it->second) {
      if (p->ready) p->ws->Post(text);
    }
  }

  // The notepad's listener: every change of a note, in order, under the note's lock.
  void OnChange(const notes::NoteChange& c) {
    std::lock_guard lock(mu_);
    auto it = rooms_.find(c.id);
    if (it == rooms_.end()) return;
    if (c.metadata) {
      std::string text = json{{"t", "meta"}}.dump();
      for (auto& p : it->second) {
        if (p->ready) p->ws->Post(text);
      }
      return;
    }
    std::string from = c.from.Encode(), to = c.to.Encode();
    std::string name;
    for (auto& p : it->second) {
      if (p->id == c.origin) name = p->name;
    }
    std::string update, changed;
    for (auto& p : it->second) {
      if (o_.auto_sync) {
        if (update.empty()) {
          update = json{{"t", "update"}, {"from", from}, {"version", to}, {"edits", notes::EditsToJson(c.edits)},
                        {"by", c.origin}, {"name", name}}
                       .dump(-1, ' ', false, json::error_handler_t::replace);
        }
        if (p->ready) {
          p->ws->Post(update);
        } else {
          p->held.push_back({from, update});
        }
      } else if (p->ready && p->id != c.origin) {
        if (changed.empty()) changed = json{{"t", "changed"}, {"version", to}, {"name", name}}.dump();
        p->ws->Post(changed);
      }
    }
  }

  NotesServices s_;
  NotesOptions o_;
  std::atomic<int64_t>& sessions_;
  std::atomic<int64_t>& edits_;
  std::atomic<int64_t>& throttled_;
  std::mutex mu_;
  std::map<std::string, std::vector<std::shared_ptr<Session>>> rooms_;
  size_t next_color_ = 0;
  bool ending_ = false;
};

std::shared_ptr<NotesApi> AddNoteRoutes(http::Router& router, NotesServices services, NotesOptions options) {
  auto api = std::make_shared<NotesApi>(services, std::move(options));
  api->Register(router);
  return api;
}

void EndNoteSessions(NotesApi& api) { api.EndSessions(); }

}  // namespace hub::api
