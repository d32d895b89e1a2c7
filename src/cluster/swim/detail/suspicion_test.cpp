#include "cluster/swim/detail/suspicion.h"

#include <gtest/gtest.h>

#include "cluster/swim/detail/awareness.h"

namespace hub::cluster::swim::detail {
namespace {

TEST(Suspicion, MinTimeoutScalesWithLog10OfClusterSize) {
  EXPECT_EQ(SuspicionMinTimeout(4, 0, 1000), 4000);
  EXPECT_EQ(SuspicionMinTimeout(4, 1, 1000), 4000);
  EXPECT_EQ(SuspicionMinTimeout(4, 10, 1000), 4000);
  EXPECT_EQ(SuspicionMinTimeout(4, 100, 1000), 8000);
  EXPECT_EQ(SuspicionMinTimeout(4, 1000, 1000), 12000);
  EXPECT_EQ(SuspicionMinTimeout(6, 50, 5000), 6 * 1698 * 5);  // log10(50) = 1.69897
}

TEST(Suspicion, TimeoutShrinksLogarithmicallyWithConfirmations) {
  // max - (max - min) * log(c + 1) / log(k + 1), k = 3, min 2 s, max 30 s.
  EXPECT_EQ(SuspicionTimeout(0, 3, 2000, 30000), 30000);
  EXPECT_EQ(SuspicionTimeout(1, 3, 2000, 30000), 16000);  // log 2 / log 4 = 1/2
  EXPECT_EQ(SuspicionTimeout(2, 3, 2000, 30000), 7810);   // log 3 / log 4 = 0.792481
  EXPECT_EQ(SuspicionTimeout(3, 3, 2000, 30000), 2000);
  EXPECT_EQ(SuspicionTimeout(9, 3, 2000, 30000), 2000);   // never below min
  EXPECT_EQ(SuspicionTimeout(0, 0, 2000, 30000), 2000);   // nothing to wait for
}

TEST(Suspicion, OnlyDistinctConfirmationsCountUpToK) {
  Suspicion s("accuser", 3, 2000, 30000, 1000);
  EXPECT_EQ(s.deadline(), 31000);
  EXPECT_FALSE(s.Confirm("accuser"));  // the first accuser is already counted
  EXPECT_TRUE(s.Confirm("b"));
  EXPECT_FALSE(s.Confirm("b"));        // a repeat is not independent
  EXPECT_EQ(s.deadline(), 17000);
  EXPECT_TRUE(s.Confirm("c"));
  EXPECT_EQ(s.deadline(), 8810);
  EXPECT_TRUE(s.Confirm("d"));
  EXPECT_EQ(s.deadline(), 3000);
  EXPECT_FALSE(s.Confirm("e"));        // k reached: no need to re-gossip
  EXPECT_EQ(s.confirmations(), 3);
}

TEST(Suspicion, KZeroStartsAtMin) {
  Suspicion s("a", 0, 5000, 30000, 100);
  EXPECT_EQ(s.deadline(), 5100);
  EXPECT_FALSE(s.Confirm("b"));
}

TEST(Awareness, ScoreIsClampedAndScalesTimeouts) {
  Awareness a(8);
  EXPECT_EQ(a.Scale(500), 500);
  a.Apply(-1);
  EXPECT_EQ(a.score(), 0);
  a.Apply(3);
  EXPECT_EQ(a.score(), 3);
  EXPECT_EQ(a.Scale(500), 2000);
  a.Apply(100);
  EXPECT_EQ(a.score(), 7);
  EXPECT_EQ(a.Scale(1000), 8000);
  a.Apply(-2);
  EXPECT_EQ(a.score(), 5);
  Awareness one(1);
  one.Apply(5);
  EXPECT_EQ(one.score(), 0);
}

}  // namespace
}  // namespace hub::cluster::swim::detail
