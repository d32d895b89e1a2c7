// Router, Request accessors and the small helpers declared in server.h.

#include "http/server.h"

#include <algorithm>
#include <stdexcept>

namespace hub::http {
namespace {

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; };
           return lower(x) == lower(y);
         });
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool IsParam(std::string_view seg) {
  return seg.size() >= 3 && seg.front() == '{' && seg.back() == '}';
}
bool IsRest(std::string_view seg) {
  return IsParam(seg) && seg.size() > 5 && seg.substr(seg.size() - 4) == "...}";
}
std::string_view ParamName(std::string_view seg) {
  seg = seg.substr(1, seg.size() - 2);
  if (seg.size() > 3 && seg.substr(seg.size() - 3) == "...") seg.remove_suffix(3);
  return seg;
}

// The segments of a path after its leading '/': "/a/b" -> a, b; "/" -> "";
// "/files/" -> files, "".
template <class F>
void ForEachSegment(std::string_view path, F&& f) {
  if (!path.empty() && path.front() == '/') path.remove_prefix(1);
  while (true) {
    size_t slash = path.find('/');
    if (!f(path.substr(0, slash), path)) return;
    if (slash == std::string_view::npos) return;
    path.remove_prefix(slash + 1);
  }
}

void AppendJsonString(std::string& out, std::string_view s) {
  static const char* kHex = "0123456789abcdef";
  out.push_back('"');
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20) {
      out += "\\u00";
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
}

class Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "hub.http"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::body_timeout: return "the client sent no body bytes for too long";
      case errc::body_too_large: return "the request body is larger than allowed";
      case errc::connection_closed: return "the connection was closed";
      case errc::bad_body: return "the request body is malformed";
      case errc::write_timeout: return "the client accepted no response bytes for too long";
    }
    return "unknown http error";
  }
};

}  // namespace

const std::error_category& category() {
  static const Category kCategory;
  return kCategory;
}

std::optional<std::string_view> Request::header(std::string_view name) const {
  for (const auto& [k, v] : headers_) {
    if (IEquals(k, name)) return std::string_view(v);
  }
  return std::nullopt;
}

std::optional<std::string_view> Request::query(std::string_view key) const {
  for (const auto& [k, v] : query_) {
    if (k == key) return std::string_view(v);
  }
  return std::nullopt;
}

std::string_view Request::param(std::string_view name) const {
  for (const auto& [k, v] : params_) {
    if (k == name) return v;
  }
  return {};
}

void Router::Add(std::string_view method, std::string_view pattern, Handler handler) {
  if (pattern.empty() || pattern.front() != '/') {
    throw std::invalid_argument("route pattern must start with '/': " + std::string(pattern));
  }
  Route route{std::string(method), {}, std::move(handler), std::string(pattern)};
  ForEachSegment(pattern, [&](std::string_view seg, std::string_view) {
    route.segments.emplace_back(seg);
    return true;
  });
  for (size_t i = 0; i < route.segments.size(); ++i) {
    if (IsRest(route.segments[i]) && i + 1 != route.segments.size()) {
      throw std::invalid_argument("'{name...}' must be the last segment: " + route.pattern);
    }
  }
  routes_.push_back(std::move(route));
}

const Handler* Router::Match(Request& req, int* status, std::string* allow) const {
  req.params_.clear();
  req.route_.clear();
  // A decoded NUL can only come from a request built by hand (the head
  // parser refuses %00), but handlers must never see one.
  if (req.path_.find('\0') != std::string::npos || req.path_.empty() || req.path_[0] != '/') {
    *status = 404;
    return nullptr;
  }
  auto path_matches = [&](const Route& route, bool capture) {
    size_t i = 0;
    bool ok = true;
    ForEachSegment(req.path_, [&](std::string_view seg, std::string_view rest) {
      if (i >= route.segments.size()) {
        ok = false;
        return false;
      }
      const std::string& pat = route.segments[i++];
      if (IsRest(pat)) {
        if (capture) req.params_.emplace_back(ParamName(pat), rest);
        i = route.segments.size();
        return false;
      }
      if (IsParam(pat)) {
        if (seg.empty()) {
          ok = false;
          return false;
        }
        if (capture) req.params_.emplace_back(ParamName(pat), seg);
        return true;
      }
      if (seg != pat) ok = false;
      return ok;
    });
    if (ok && i != route.segments.size()) ok = false;
    if (!ok && capture) req.params_.clear();
    return ok;
  };

  const Route* head_fallback = nullptr;
  bool path_known = false;
  for (const Route& route : routes_) {
    if (route.method != req.method_ && !(req.method_ == "HEAD" && route.method == "GET")) {
      continue;
    }
    if (!path_matches(route, false)) continue;
    if (route.method == req.method_) {
      path_matches(route, true);
      req.route_ = route.pattern;
      return &route.handler;
    }
    if (head_fallback == nullptr) head_fallback = &route;
  }
  if (head_fallback != nullptr) {
    path_matches(*head_fallback, true);
    req.route_ = head_fallback->pattern;
    return &head_fallback->handler;
  }
  // Which methods would have matched this path?
  std::vector<std::string_view> methods;
  for (const Route& route : routes_) {
    if (!path_matches(route, false)) continue;
    path_known = true;
    auto add = [&](std::string_view m) {
      if (std::find(methods.begin(), methods.end(), m) == methods.end()) methods.push_back(m);
    };
    add(route.method);
    if (route.method == "GET") add("HEAD");
  }
  if (!path_known) {
    *status = 404;
    return nullptr;
  }
  *status = 405;
  if (allow != nullptr) {
    allow->clear();
    for (std::string_view m : methods) {
      if (!allow->empty()) *allow += ", ";
      *allow += m;
    }
  }
  return nullptr;
}

Response JsonError(int status, std::string_view code, std::string_view message) {
  Response r;
  r.status = status;
  r.headers.emplace_back("Content-Type", "application/json");
  r.body.reserve(32 + code.size() + message.size());
  r.body += "{\"error\":{\"code\":";
  AppendJsonString(r.body, code);
  r.body += ",\"message\":";
  AppendJsonString(r.body, message);
  r.body += "}}";
  return r;
}

std::string_view ReasonPhrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 460: return "Checksum Mismatch";  // tus checksum extension
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 507: return "Insufficient Storage";
    default: return "Unknown";
  }
}

std::optional<std::string> PercentDecode(std::string_view in, bool plus_is_space) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (in.size() - i < 3) return std::nullopt;
      int hi = HexValue(in[i + 1]);
      int lo = HexValue(in[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      c = ' ';
    }
    if (c == '\0') return std::nullopt;
    out.push_back(c);
  }
  return out;
}

}  // namespace hub::http
