#pragma once
// Identifiers that are safe as file names on every backend.

#include <string>
#include <string_view>

namespace hub {

// A new random id: 22 characters of [0-9a-z], time-ordered prefix
// (10 chars of milliseconds, base36) + 12 random chars, so that ids sort by
// creation and never collide between nodes in practice (62 bits of randomness).
std::string NewId(int64_t unix_millis);

// A random hex token of `bytes` bytes from the OS CSPRNG (getrandom).
std::string RandomHex(size_t bytes);

// True when `id` is 1..64 chars of [0-9A-Za-z_-]: never '.', '/', NUL or
// anything a path could be tricked with. Every id from a URL is checked with
// this before it touches storage.
bool IsValidId(std::string_view id);

}  // namespace hub
