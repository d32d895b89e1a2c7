#include "events/bus.h"

#include <gtest/gtest.h>

namespace hub::events {

TEST(Bus, DeliversToEverySubscriberInOrderUntilUnsubscribed) {
  Bus bus;
  std::vector<std::string> seen;
  int a = bus.Subscribe([&](const Event& e) { seen.push_back("a:" + std::get<VideoChanged>(e).id); });
  bus.Subscribe([&](const Event& e) { seen.push_back("b:" + std::get<VideoChanged>(e).id); });
  bus.Publish(VideoChanged{"v1"});
  bus.Unsubscribe(a);
  bus.Publish(VideoChanged{"v2"});
  EXPECT_EQ(seen, (std::vector<std::string>{"a:v1", "b:v1", "b:v2"}));
}

TEST(Bus, SubscriberMayUnsubscribeItselfDuringDelivery) {
  Bus bus;
  int calls = 0;
  int token = 0;
  token = bus.Subscribe([&](const Event&) { ++calls; bus.Unsubscribe(token); });
  bus.Publish(VideoChanged{"x"});
  bus.Publish(VideoChanged{"y"});
  EXPECT_EQ(calls, 1);
}

}  // namespace hub::events
