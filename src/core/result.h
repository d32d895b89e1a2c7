#pragma once
// Result<T>: a value or an Error. Errors are values at component boundaries
// (STYLE.md #3); exceptions are for start-up failures and broken invariants.

#include <cassert>
#include <string>
#include <system_error>
#include <utility>
#include <variant>

namespace hub {

// An error a caller can branch on (`code`) and a person can read (`message`,
// which says what happened and, where possible, what to do).
struct Error {
  std::error_code code;
  std::string message;
};

inline Error MakeError(std::error_code code, std::string message) {
  return Error{code, std::move(message)};
}

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { assert(ok()); return std::get<0>(v_); }
  const T& value() const& { assert(ok()); return std::get<0>(v_); }
  T&& value() && { assert(ok()); return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const { assert(!ok()); return std::get<1>(v_); }
  std::error_code code() const { return ok() ? std::error_code{} : error().code; }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), failed_(true) {}  // NOLINT

  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  const Error& error() const { assert(failed_); return error_; }
  std::error_code code() const { return failed_ ? error_.code : std::error_code{}; }

 private:
  Error error_;
  bool failed_ = false;
};

inline Result<void> Ok() { return {}; }

}  // namespace hub

// Propagates an error from an expression returning Result<...>.
#define HUB_TRY(expr)                              \
  do {                                             \
    auto hub_try_r_ = (expr);                      \
    if (!hub_try_r_.ok()) return hub_try_r_.error(); \
  } while (0)
