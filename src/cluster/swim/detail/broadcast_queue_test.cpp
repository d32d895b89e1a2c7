#include "cluster/swim/detail/broadcast_queue.h"

#include <gtest/gtest.h>

namespace hub::cluster::swim::detail {
namespace {

Bytes Msg(uint8_t tag, size_t size = 10) { return Bytes(size, tag); }

TEST(BroadcastQueue, RetransmitLimitGrowsWithLog10OfClusterSize) {
  EXPECT_EQ(RetransmitLimit(4, 0), 1);  // ceil(log10(1)) = 0, floored at one send
  EXPECT_EQ(RetransmitLimit(4, 1), 4);
  EXPECT_EQ(RetransmitLimit(4, 9), 4);
  EXPECT_EQ(RetransmitLimit(4, 10), 8);
  EXPECT_EQ(RetransmitLimit(4, 99), 8);
  EXPECT_EQ(RetransmitLimit(4, 100), 12);
  EXPECT_EQ(RetransmitLimit(4, 1000), 16);
  EXPECT_EQ(RetransmitLimit(2, 5), 2);
}

TEST(BroadcastQueue, EachMessageIsSentExactlyItsLimit) {
  BroadcastQueue q;
  q.Push("a", Msg(1));
  q.Push("b", Msg(2));
  int sent_a = 0, sent_b = 0;
  for (int round = 0; round < 10; ++round) {
    for (const Bytes& b : q.Take(2, 1000, 3)) (b[0] == 1 ? sent_a : sent_b)++;
  }
  EXPECT_EQ(sent_a, 3);
  EXPECT_EQ(sent_b, 3);
  EXPECT_TRUE(q.empty());
}

TEST(BroadcastQueue, PerMessageLimitOverridesTheDefault) {
  BroadcastQueue q;
  q.Push("hb", Msg(1), 1);
  q.Push("x", Msg(2));
  EXPECT_EQ(q.Take(2, 1000, 5).size(), 2u);
  auto second = q.Take(2, 1000, 5);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0][0], 2);
}

TEST(BroadcastQueue, NewerMessageAboutTheSameKeyInvalidatesTheOlder) {
  BroadcastQueue q;
  q.Push("node-a", Msg(1));
  q.Push("node-b", Msg(2));
  q.Push("node-a", Msg(3));
  EXPECT_EQ(q.size(), 2u);
  auto got = q.Take(0, 1000, 5);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0][0], 3);  // newest first
  EXPECT_EQ(got[1][0], 2);
  // Invalidation also applies to a message already sent a few times.
  q.Push("node-b", Msg(4));
  got = q.Take(0, 1000, 5);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0][0], 4);  // never sent, so first
}

TEST(BroadcastQueue, UnkeyedMessagesNeverInvalidateEachOther) {
  BroadcastQueue q;
  q.Push({}, Msg(1));
  q.Push({}, Msg(2));
  EXPECT_EQ(q.size(), 2u);
}

TEST(BroadcastQueue, LeastSentFirstThenNewest) {
  BroadcastQueue q;
  q.Push("a", Msg(1));
  q.Push("b", Msg(2));
  ASSERT_EQ(q.Take(0, 10, 10).size(), 1u);  // room for one: the newest, b
  q.Push("c", Msg(3));
  auto got = q.Take(0, 20, 10);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0][0], 3);  // sent 0 times, newer than a
  EXPECT_EQ(got[1][0], 1);  // sent 0 times
}

TEST(BroadcastQueue, PacksWithinTheBudgetSkippingWhatDoesNotFit) {
  BroadcastQueue q;
  q.Push("small-old", Msg(1, 10));
  q.Push("big", Msg(2, 100));
  q.Push("small-new", Msg(3, 10));
  auto got = q.Take(2, 30, 10);
  size_t used = 0;
  for (const Bytes& b : got) used += b.size() + 2;
  EXPECT_LE(used, 30u);
  ASSERT_EQ(got.size(), 2u);  // the big one is skipped, both small ones fit
  EXPECT_EQ(got[0][0], 3);
  EXPECT_EQ(got[1][0], 1);
  EXPECT_EQ(q.Take(2, 30, 10).size(), 2u);  // the big one still waits
  EXPECT_EQ(q.Take(2, 200, 10).size(), 3u);
  EXPECT_EQ(q.Take(2, 1000, 10, 1).size(), 1u);  // max_count
}

TEST(BroadcastQueue, DepthIsBoundedDroppingTheMostSentOldest) {
  BroadcastQueue q(3);
  q.Push("a", Msg(1));
  q.Take(0, 10, 10);  // a sent once
  q.Push("b", Msg(2));
  q.Push("c", Msg(3));
  q.Push("d", Msg(4));
  EXPECT_EQ(q.size(), 3u);
  for (const Bytes& b : q.Take(0, 1000, 10)) EXPECT_NE(b[0], 1);
  q.Push("a", Msg(5));  // the dropped key is free to be queued again
  EXPECT_EQ(q.size(), 3u);
}

}  // namespace
}  // namespace hub::cluster::swim::detail
