#pragma once
// Who may do what. Anyone may browse and watch; writes need a credential.
// One middleware (RequireWriter) guards every write route, so that user
// accounts can replace the single admin token later by implementing Access.

#include <string>
#include <string_view>

#include "core/clock.h"
#include "http/server.h"

namespace hub::api {

struct Principal {
  bool authenticated = false;
  bool via_cookie = false;
  std::string name;  // "admin" for the token
};

class Access {
 public:
  virtual ~Access() = default;
  virtual Principal Authenticate(const http::Request& req) const = 0;
  // A Set-Cookie value signing the holder in, or "" when `credential` is wrong.
  virtual std::string SignIn(std::string_view credential) const = 0;
};

// The single admin token: `Authorization: Bearer <token>` or the hub_session
// cookie, an HMAC-SHA256 of its expiry under the token, so any instance that
// knows the token accepts it (no sticky sessions behind a load balancer).
class TokenAccess final : public Access {
 public:
  TokenAccess(std::string token, const Clock& clock, int64_t session_seconds = 30 * 24 * 3600);
  Principal Authenticate(const http::Request& req) const override;
  std::string SignIn(std::string_view credential) const override;
  // The Set-Cookie value that clears the session.
  static std::string SignOutCookie();

 private:
  std::string Sign(std::string_view payload) const;
  std::string token_;
  const Clock& clock_;
  int64_t session_seconds_;
};

// Wraps a handler: 401 JSON for anonymous requests; for cookie sessions, a
// cross-site request (Origin not matching Host) is refused with 403.
http::Handler RequireWriter(const Access& access, http::Handler next);

}  // namespace hub::api
