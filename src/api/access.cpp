#include "api/access.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

namespace hub::api {
namespace {

constexpr std::string_view kCookie = "hub_session";

bool ConstantTimeEqual(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string Hex(const unsigned char* p, size_t n) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kHex[p[i] >> 4]);
    out.push_back(kHex[p[i] & 15]);
  }
  return out;
}

std::string_view CookieValue(std::string_view header, std::string_view name) {
  size_t pos = 0;
  while (pos < header.size()) {
    size_t end = header.find(';', pos);
    std::string_view kv = header.substr(pos, end == std::string_view::npos ? header.npos : end - pos);
    while (!kv.empty() && kv.front() == ' ') kv.remove_prefix(1);
    if (kv.size() > name.size() && kv.substr(0, name.size()) == name && kv[name.size()] == '=') {
      return kv.substr(name.size() + 1);
    }
    if (end == std::string_view::npos) break;
    pos = end + 1;
  }
  return {};
}

// "https://host:port" -> "host:port"
std::string_view OriginHost(std::string_view origin) {
  size_t scheme = origin.find("://");
  if (scheme == std::string_view::npos) return origin;
  return origin.substr(scheme + 3);
}

}  // namespace

TokenAccess::TokenAccess(std::string token, const Clock& clock, int64_t session_seconds)
    : token_(std::move(token)), clock_(clock), session_seconds_(session_seconds) {}

std::string TokenAccess::Sign(std::string_view payload) const {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), token_.data(), static_cast<int>(token_.size()),
       reinterpret_cast<const unsigned char*>(payload.data()), payload.size(), mac, &len);
  return Hex(mac, len);
}

Principal TokenAccess::Authenticate(const http::Request& req) const {
  if (auto auth = req.header("Authorization")) {
    std::string_view v = *auth;
    if (v.size() > 7 && (v.substr(0, 7) == "Bearer " || v.substr(0, 7) == "bearer ") &&
        ConstantTimeEqual(v.substr(7), token_)) {
      return Principal{true, false, "admin"};
    }
  }
  if (auto cookie = req.header("Cookie")) {
    std::string_view value = CookieValue(*cookie, kCookie);
    // v1.<expiry>.<hmac>
    if (value.size() > 3 && value.substr(0, 3) == "v1.") {
      size_t dot = value.find('.', 3);
      if (dot != std::string_view::npos) {
        std::string_view payload = value.substr(0, dot);
        std::string_view mac = value.substr(dot + 1);
        int64_t expiry = 0;
        for (char c : payload.substr(3)) {
          if (c < '0' || c > '9' || expiry > INT64_MAX / 20) return {};
          expiry = expiry * 10 + (c - '0');
        }
        if (ConstantTimeEqual(mac, Sign(payload)) && expiry > clock_.NowUnixSeconds()) {
          return Principal{true, true, "admin"};
        }
      }
    }
  }
  return {};
}

std::string TokenAccess::SignIn(std::string_view credential) const {
  if (!ConstantTimeEqual(credential, token_)) return "";
  std::string payload = "v1." + std::to_string(clock_.NowUnixSeconds() + session_seconds_);
  return std::string(kCookie) + "=" + payload + "." + Sign(payload) +
         "; Path=/; HttpOnly; SameSite=Strict; Max-Age=" + std::to_string(session_seconds_);
}

std::string TokenAccess::SignOutCookie() {
  return std::string(kCookie) + "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0";
}

http::Handler RequireWriter(const Access& access, http::Handler next) {
  return [&access, next = std::move(next)](http::Exchange& ex) -> http::asio::awaitable<void> {
    Principal who = access.Authenticate(ex.request());
    if (!who.authenticated) {
      auto r = http::JsonError(401, "unauthorized",
                               "Sign in first: send 'Authorization: Bearer <token>' or sign in on /signin.");
      r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"stream-hub\"");
      co_await ex.Send(std::move(r));
      co_return;
    }
    if (who.via_cookie) {
      auto origin = ex.request().header("Origin");
      auto host = ex.request().header("Host");
      if (origin && (*origin == "null" || !host || OriginHost(*origin) != *host)) {
        co_await ex.Send(http::JsonError(403, "cross_origin",
                                         "This request came from another site; it was refused."));
        co_return;
      }
    }
    co_await next(ex);
  };
}

}  // namespace hub::api
