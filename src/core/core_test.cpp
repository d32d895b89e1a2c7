#include "core/clock.h"
#include "core/ids.h"
#include "core/metrics.h"
#include "core/result.h"

#include <gtest/gtest.h>

#include <set>

namespace hub {

TEST(Ids, NewIdIsValidUniqueAndTimeOrdered) {
  std::set<std::string> seen;
  std::string prev;
  for (int i = 0; i < 1000; ++i) {
    std::string id = NewId(1'700'000'000'000 + i);
    EXPECT_EQ(id.size(), 22u);
    EXPECT_TRUE(IsValidId(id)) << id;
    EXPECT_TRUE(seen.insert(id).second);
    EXPECT_LT(prev, id);
    prev = id;
  }
}

TEST(Ids, RejectsPathTricks) {
  for (const std::string& bad : std::vector<std::string>{"", "..", ".", "a/b", "a\\b", std::string("a\0b", 3), "a.b", "%2e%2e",
                          std::string(65, 'a'), "é"}) {
    EXPECT_FALSE(IsValidId(bad)) << bad;
  }
  EXPECT_TRUE(IsValidId("abc_DEF-123"));
}

TEST(Clock, ManualClockMovesOnlyWhenTold) {
  ManualClock c(1'000'000'000);
  EXPECT_EQ(c.NowUnixSeconds(), 1);
  c.Advance(std::chrono::seconds(2));
  EXPECT_EQ(c.NowUnixSeconds(), 3);
}

TEST(Clock, HttpDateRoundTrips) {
  EXPECT_EQ(FormatHttpDate(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_EQ(ParseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777);
  EXPECT_EQ(ParseHttpDate("Sun, 06 Nov 1994 08:49:37 GMTx"), -1);
  EXPECT_EQ(ParseHttpDate("garbage"), -1);
  EXPECT_EQ(FormatRfc3339(784111777'123'000'000), "1994-11-06T08:49:37.123Z");
}

TEST(Result, CarriesValueOrError) {
  Result<int> good = 5;
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*good, 5);
  Result<int> bad = MakeError(std::make_error_code(std::errc::io_error), "disk on fire");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message, "disk on fire");
  auto f = [&]() -> Result<void> {
    HUB_TRY(bad);
    return Ok();
  };
  EXPECT_FALSE(f().ok());
}

TEST(Metrics, RendersPrometheusText) {
  Metrics m;
  m.Counter("hub_requests_total", {{"route", "/a\"b"}, {"status", "200"}}, "Requests.") += 3;
  m.Gauge("hub_uploads_in_flight", {}, "Uploads.") = 2;
  std::string text = m.Render();
  EXPECT_NE(text.find("# TYPE hub_requests_total counter"), std::string::npos);
  EXPECT_NE(text.find("hub_requests_total{route=\"/a\\\"b\",status=\"200\"} 3"), std::string::npos);
  EXPECT_NE(text.find("hub_uploads_in_flight 2"), std::string::npos);
}

}  // namespace hub
