#pragma once
// Helpers shared by the HTTP handlers of api/ (videos, uploads, notes).

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include "http/server.h"

namespace hub::api::detail {

namespace asio = boost::asio;

inline http::Response Json(int status, const nlohmann::json& body) {
  http::Response r;
  r.status = status;
  r.headers.emplace_back("Content-Type", "application/json");
  r.headers.emplace_back("Cache-Control", "no-store");
  r.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return r;
}

inline http::Response NoContent(http::Headers headers = {}) {
  http::Response r;
  r.status = 204;
  r.headers = std::move(headers);
  return r;
}

// The body of OffThread: a plain coroutine (not a lambda) so that `f` lives
// in the coroutine frame as a parameter; GCC 12 mis-destroys the captures
// of lambda coroutines.
template <class R, class F>
asio::awaitable<std::optional<R>> CallOnce(F f) {
  co_return std::optional<R>(f());
}

// Runs blocking storage work on the pool and resumes on the caller's executor.
template <class F>
asio::awaitable<std::invoke_result_t<F&>> OffThread(asio::thread_pool& pool, F f) {
  using R = std::invoke_result_t<F&>;
  auto out = co_await asio::co_spawn(pool.get_executor(), CallOnce<R>(std::move(f)), asio::use_awaitable);
  co_return std::move(*out);
}

inline bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += n;
  }
  return true;
}

// At most `max` bytes, never splitting a UTF-8 sequence.
inline std::string TruncateUtf8(std::string s, size_t max) {
  if (s.size() <= max) return s;
  size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  s.resize(cut);
  return s;
}

}  // namespace hub::api::detail
