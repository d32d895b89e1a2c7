#include "cluster/swim/detail/event_log.h"

#include <gtest/gtest.h>

namespace hub::cluster::swim::detail {
namespace {

WireEvent Ev(std::string origin, uint64_t boot, uint64_t id) {
  return WireEvent{std::move(origin), boot, id, id, "t", ""};
}

TEST(EventLog, EachEventIsSeenOnce) {
  EventLog log(16);
  EXPECT_TRUE(log.MarkSeen("a", 1, 1));
  EXPECT_FALSE(log.MarkSeen("a", 1, 1));
  EXPECT_TRUE(log.MarkSeen("a", 1, 3));
  EXPECT_TRUE(log.MarkSeen("a", 1, 2));  // late but inside the window
  EXPECT_FALSE(log.MarkSeen("a", 1, 2));
  EXPECT_FALSE(log.MarkSeen("a", 1, 0));  // ids start at 1
  EXPECT_TRUE(log.MarkSeen("b", 1, 1));
}

TEST(EventLog, ARestartedOriginIsANewLife) {
  EventLog log(16);
  EXPECT_TRUE(log.MarkSeen("a", 111, 1));
  EXPECT_TRUE(log.MarkSeen("a", 222, 1));
  EXPECT_FALSE(log.MarkSeen("a", 222, 1));
}

TEST(EventLog, WindowSlidesAndTooOldCountsAsSeen) {
  EventLog log(16);
  for (uint64_t id = 1; id <= 300; id += 2) ASSERT_TRUE(log.MarkSeen("a", 1, id));
  EXPECT_TRUE(log.Seen("a", 1, 299));
  EXPECT_FALSE(log.Seen("a", 1, 298));
  EXPECT_TRUE(log.Seen("a", 1, 297));
  EXPECT_FALSE(log.Seen("a", 1, 300 - EventLog::kWindow + 2));
  EXPECT_TRUE(log.Seen("a", 1, 10));  // beyond the window
  EXPECT_TRUE(log.MarkSeen("a", 1, 1000));  // a jump clears the window
  EXPECT_FALSE(log.Seen("a", 1, 999));
  EXPECT_TRUE(log.Seen("a", 1, 1000 - EventLog::kWindow - 1));
}

TEST(EventLog, RecentIsBounded) {
  EventLog log(3);
  for (uint64_t id = 1; id <= 5; ++id) log.Remember(Ev("a", 1, id));
  ASSERT_EQ(log.recent().size(), 3u);
  EXPECT_EQ(log.recent().front().id, 3u);
}

TEST(EventLog, MissingIsWhatTheDigestLacks) {
  EventLog mine(16), theirs(16);
  for (uint64_t id = 1; id <= 6; ++id) {
    mine.MarkSeen("a", 1, id);
    mine.Remember(Ev("a", 1, id));
  }
  mine.MarkSeen("b", 1, 1);
  mine.Remember(Ev("b", 1, 1));
  for (uint64_t id : {1, 2, 4, 6}) theirs.MarkSeen("a", 1, id);
  auto missing = mine.Missing(theirs.Digest());
  ASSERT_EQ(missing.size(), 3u);
  EXPECT_EQ(missing[0].id, 3u);
  EXPECT_EQ(missing[1].id, 5u);
  EXPECT_EQ(missing[2].origin, "b");
  EXPECT_TRUE(mine.Missing(mine.Digest()).empty());
}

TEST(EventLog, LamportClock) {
  EventLog log(1);
  EXPECT_EQ(log.Tick(), 1u);
  log.Observe(10);
  EXPECT_EQ(log.clock(), 11u);
  log.Observe(3);
  EXPECT_EQ(log.clock(), 12u);
  EXPECT_EQ(log.Tick(), 13u);
}

TEST(EventLog, OriginTableIsBoundedLeastRecentlyUsedFirst) {
  EventLog log(1, 3);
  log.MarkSeen("a", 1, 1);
  log.MarkSeen("b", 1, 1);
  log.MarkSeen("c", 1, 1);
  log.MarkSeen("a", 1, 2);  // a is fresh again
  log.MarkSeen("d", 1, 1);  // evicts b
  EXPECT_EQ(log.origins(), 3u);
  EXPECT_TRUE(log.Seen("a", 1, 1));
  EXPECT_FALSE(log.Seen("b", 1, 1));
}

}  // namespace
}  // namespace hub::cluster::swim::detail
