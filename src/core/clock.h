#pragma once
// Clock seam: the system clock in production, ManualClock in tests
// (STYLE.md #2: no test sleeps to wait for time).

#include <atomic>
#include <chrono>
#include <cstdint>

namespace hub {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time, nanoseconds since the Unix epoch. Thread-safe.
  virtual int64_t NowUnixNanos() const = 0;
  int64_t NowUnixMillis() const { return NowUnixNanos() / 1'000'000; }
  int64_t NowUnixSeconds() const { return NowUnixNanos() / 1'000'000'000; }
};

class SystemClock final : public Clock {
 public:
  int64_t NowUnixNanos() const override {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

// A clock that moves only when told to. Thread-safe.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t start_unix_nanos = 1'700'000'000'000'000'000)
      : now_(start_unix_nanos) {}
  int64_t NowUnixNanos() const override { return now_.load(); }
  void Advance(std::chrono::nanoseconds d) { now_ += d.count(); }
  void Set(int64_t unix_nanos) { now_ = unix_nanos; }

 private:
  std::atomic<int64_t> now_;
};

// RFC 3339 UTC with millisecond precision, e.g. "2026-11-27T20:56:35.123Z".
std::string FormatRfc3339(int64_t unix_nanos);
// RFC 7231 IMF-fixdate, e.g. "Sun, 06 Nov 1994 08:49:37 GMT".
std::string FormatHttpDate(int64_t unix_seconds);
// Parses an IMF-fixdate; returns -1 when malformed.
int64_t ParseHttpDate(std::string_view text);

}  // namespace hub
