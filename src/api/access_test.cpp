#include "api/access.h"

#include <gtest/gtest.h>

namespace hub::api {
namespace {

http::Request With(std::string name, std::string value) {
  http::Request r;
  r.headers_.emplace_back(std::move(name), std::move(value));
  return r;
}

std::string CookieOf(const std::string& set_cookie) { return set_cookie.substr(0, set_cookie.find(';')); }

TEST(TokenAccess, BearerTokenAndSignedCookie) {
  ManualClock clock;
  TokenAccess access("0123456789abcdef-secret", clock, 3600);
  EXPECT_FALSE(access.Authenticate(http::Request{}).authenticated);
  EXPECT_TRUE(access.Authenticate(With("Authorization", "Bearer 0123456789abcdef-secret")).authenticated);
  EXPECT_FALSE(access.Authenticate(With("Authorization", "Bearer 0123456789abcdef-secreT")).authenticated);
  EXPECT_FALSE(access.Authenticate(With("Authorization", "Basic 0123456789abcdef-secret")).authenticated);
  EXPECT_EQ(access.SignIn("wrong"), "");
  std::string set_cookie = access.SignIn("0123456789abcdef-secret");
  ASSERT_NE(set_cookie, "");
  EXPECT_NE(set_cookie.find("HttpOnly"), std::string::npos);
  EXPECT_NE(set_cookie.find("SameSite=Strict"), std::string::npos);
  auto who = access.Authenticate(With("Cookie", "a=b; " + CookieOf(set_cookie) + "; c=d"));
  EXPECT_TRUE(who.authenticated);
  EXPECT_TRUE(who.via_cookie);
  // Another instance with the same token accepts it (no sticky sessions).
  TokenAccess other("0123456789abcdef-secret", clock, 3600);
  EXPECT_TRUE(other.Authenticate(With("Cookie", CookieOf(set_cookie))).authenticated);
  // ... one with another token does not.
  TokenAccess stranger("another-token-0123456789", clock, 3600);
  EXPECT_FALSE(stranger.Authenticate(With("Cookie", CookieOf(set_cookie))).authenticated);
  // Expired.
  clock.Advance(std::chrono::seconds(3601));
  EXPECT_FALSE(access.Authenticate(With("Cookie", CookieOf(set_cookie))).authenticated);
}

TEST(TokenAccess, ForgedCookiesAreRefused) {
  ManualClock clock;
  TokenAccess access("0123456789abcdef-secret", clock, 3600);
  std::string good = CookieOf(access.SignIn("0123456789abcdef-secret"));
  std::string value = good.substr(good.find('=') + 1);
  // Extend the expiry without re-signing.
  std::string forged = "hub_session=v1.99999999999." + value.substr(value.rfind('.') + 1);
  for (const std::string& c : {forged, std::string("hub_session=v1.1.abc"), std::string("hub_session=v1."),
                               std::string("hub_session="), std::string("hub_session=v2.1.x"),
                               std::string("hub_session=v1.-5.") + value.substr(value.rfind('.') + 1),
                               std::string("hub_session=v1.999999999999999999999999.x")}) {
    EXPECT_FALSE(access.Authenticate(With("Cookie", c)).authenticated) << c;
  }
}

}  // namespace
}  // namespace hub::api
