#pragma once
// The notepad's text CRDT: a sequence CRDT over Unicode code points (FugueMax
// ordering, run-length encoded, in a B-tree), pure and deterministic — no I/O,
// no clock, no threads. See src/notes/README.md for the algorithm, the wire
// format and the invariants, docs/notepad.md for why this design.
//
// Every operation has an id (agent, sequence number) and a Lamport timestamp;
// an agent is one writer (one hub node, one replica) and must be unique per
// writer. A Version names a causally closed set of operations (a version
// vector) and encodes to an opaque token.

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "core/result.h"

namespace hub::notes {

enum class errc {
  bad_position = 1,  // an edit's position is negative or past the end of the text
  bad_delete,        // a delete count is negative or runs past the end of the text
  bad_utf8,          // inserted text is not valid UTF-8 (overlong, surrogate, truncated...)
  bad_version,       // a version token is malformed or not causally closed
  unknown_version,   // a version names operations this document does not have (yet)
  bad_encoding,      // encoded operations or a snapshot are malformed or inconsistent
  too_large,         // the document would exceed Options::max_size_bytes
  too_many_pending,  // more remote operations wait for dependencies than Options allow
  bad_agent,         // an agent name is empty or longer than kMaxAgentBytes
};
const std::error_category& category();
inline std::error_code make_error_code(errc e) { return {static_cast<int>(e), category()}; }

inline constexpr size_t kMaxAgentBytes = 64;

// A set of operations closed under causality: agent -> number of operations
// seen (version vector). Cheap to copy for the few agents a note has.
class Version {
 public:
  Version() = default;
  // An opaque, URL-safe token (base64url, no padding); "" for the empty version.
  std::string Encode() const;
  // bad_version when malformed. Whether the document has these operations is
  // checked where the version is used (unknown_version).
  static Result<Version> Decode(std::string_view token);

  // Operations seen from `agent`.
  uint32_t Count(std::string_view agent) const;
  // Whether every operation of `other` is in this version.
  bool Includes(const Version& other) const;
  // Total operations.
  uint64_t Size() const;
  bool operator==(const Version&) const = default;

  // Sorted by agent name; counts > 0.
  const std::vector<std::pair<std::string, uint32_t>>& entries() const { return v_; }
  void Set(std::string agent, uint32_t count);

 private:
  std::vector<std::pair<std::string, uint32_t>> v_;
};

// One edit: delete `delete_count` code points at `position`, then insert
// `insert` (UTF-8) there — Array.prototype.splice on code points.
struct Edit {
  int64_t position = 0;
  int64_t delete_count = 0;
  std::string insert;
};

struct DocOptions {
  // This replica's writer id (1..kMaxAgentBytes bytes). Two replicas must
  // never write with the same agent; a replica loading its own snapshot
  // continues its sequence numbers.
  std::string agent = "local";
  // An Apply whose inserted bytes would take the text past this is refused
  // (too_large) before anything changes. Deleted bytes of the same request
  // are not credited: split a large replace into a delete and an insert.
  uint64_t max_size_bytes = 100ull << 20;
  // Remote operations buffered while their dependencies are missing.
  size_t max_pending_ops = 100'000;
};

namespace detail { class DocImpl; }

// Not thread-safe: one owner (the note's strand) calls it. The constructor
// throws std::invalid_argument when options.agent is empty or too long.
class Doc {
 public:
  explicit Doc(DocOptions options = {});
  ~Doc();
  Doc(Doc&&) noexcept;
  Doc& operator=(Doc&&) noexcept;

  // Loads a snapshot written by Save() (of any replica). bad_encoding when
  // malformed or inconsistent; never trusts a length field.
  static Result<Doc> Load(std::string_view snapshot, DocOptions options = {});
  // The whole document: every operation, tombstones included.
  std::string Save() const;

  Version version() const;
  std::string Text() const;
  // The text as it was at `v` (unknown_version / bad_version).
  Result<std::string> TextAt(const Version& v) const;
  uint64_t Length() const;  // code points
  uint64_t Size() const;    // UTF-8 bytes

  // Applies `edits` in order as this replica's agent: the first relative to
  // the text at `base`, each following one to the result of those before it.
  // Concurrent operations not in `base` are merged (never interleaved).
  // All edits are validated first: on any error the document is unchanged.
  // Returns the new version (which includes `base`).
  Result<Version> Apply(const Version& base, std::span<const Edit> edits);
  // Same, written as `agent` instead of this replica's agent (one writer per
  // agent still holds: e.g. one agent per editing session). bad_agent when
  // empty or too long.
  Result<Version> Apply(const Version& base, std::span<const Edit> edits, std::string_view agent);
  // Same, relative to the current text (the fast path: call version() if
  // the new version is needed).
  Result<void> Apply(std::span<const Edit> edits);

  // Edits (splice semantics, code points, in order) that turn the text at
  // `since` into the current text: what a viewer at `since` must apply to
  // catch up. Minimal per run of items; unknown_version / bad_version.
  Result<std::vector<Edit>> ChangesSince(const Version& since) const;

  // Operations not in `since`, in causal order, for another replica.
  std::string EncodeOps(const Version& since) const;
  // Integrates operations from EncodeOps (of any replica), in any order, any
  // number of times: duplicates are ignored, operations whose dependencies
  // are missing wait until those arrive. bad_encoding (nothing applied) when
  // malformed; too_many_pending when the buffer is full (the message is dropped).
  Result<void> ApplyRemote(std::string_view bytes);
  // Remote operations waiting for dependencies.
  size_t pending() const;

  // Statistics for benchmarks and tests.
  struct Stats {
    size_t runs = 0;          // runs in the document tree
    size_t op_runs = 0;       // run-length encoded operations in the history
    uint64_t items = 0;       // code points ever inserted (tombstones included)
    size_t memory_bytes = 0;  // approximate heap use
  };
  Stats stats() const;

 private:
  std::unique_ptr<detail::DocImpl> impl_;
};

}  // namespace hub::notes

template <>
struct std::is_error_code_enum<hub::notes::errc> : std::true_type {};
