#pragma once
// Resumable uploads (the semantics of tus 1.0.0, independent of HTTP), made
// for a shared NFS directory written by several hub processes at once.
//
// Layout under the videos store (docs/storage.md):
//   <id>/upload/info.json        declared length, metadata, creation time (immutable)
//   <id>/upload/parts/<token>    bytes of one PATCH; written only by that request
//   <id>/upload/chunks/<offset>  commit record {"part","length","at"}; created with
//                                CreateExclusive, so of two requests that race to
//                                append at the same offset (on any node) exactly
//                                one commits and the other gets offset_mismatch
//   <id>/upload/busy-<offset>    advisory marker of a request in flight (early 409)
//   <id>/original                the assembled upload, once the chunks cover it
// The offset is the end of the chain of chunk records from 0. Records are
// immutable, so a process caches the chain it has read. Nothing is appended
// to a shared file and no lock is taken.

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "storage/store.h"
#include "upload/tus_headers.h"

namespace hub::upload {

enum class errc {
  not_found = 1,         // 404
  bad_request,           // 400: malformed header
  unsupported_checksum,  // 400
  offset_mismatch,       // 409: Upload-Offset differs, or another request committed first
  busy,                  // 409: another request is uploading at this offset now
  too_large,             // 413: Upload-Length over the maximum
  length_exceeded,       // 413: more bytes than Upload-Length
  checksum_mismatch,     // 460: chunk discarded
  expired,               // 410
  no_space,              // 507: storage full; the upload stays resumable
  io_error,              // 500
};
const std::error_category& category();
inline std::error_code make_error_code(errc e) { return {static_cast<int>(e), category()}; }

struct UploadOptions {
  uint64_t max_size_bytes = 20ull << 30;        // MAX_UPLOAD_SIZE_MB
  int64_t expiry_ms = 24ll * 3600 * 1000;        // unfinished uploads expire this long after last activity
  int64_t busy_stale_ms = 30'000;                // another node's in-flight marker older than this is ignored
  std::string node_id = "node";                  // this node; its own stale markers are recognised at once
};

struct UploadStatus {
  std::string id;
  uint64_t length = 0;
  uint64_t offset = 0;
  bool complete = false;       // <id>/original exists
  int64_t created_at_ms = 0;
  int64_t expires_at_ms = 0;   // 0 once complete
  std::map<std::string, std::string> metadata;
};

class Uploads;

// The bytes of one PATCH request on their way to storage. Not thread-safe;
// owned by the request. Destroying it without Commit discards the bytes.
class Chunk {
 public:
  ~Chunk();
  uint64_t offset() const { return offset_; }
  uint64_t received() const { return received_; }
  // Appends; length_exceeded (and nothing written) when the upload's length
  // would be passed; no_space / io_error from storage.
  Result<void> Write(std::span<const char> data);
  // Verifies the checksum (mismatch: discarded, checksum_mismatch), syncs,
  // commits the record and, when the upload is now whole, assembles the
  // original. An empty chunk commits nothing. Returns the new status.
  Result<UploadStatus> Commit();
  // For an interrupted request: keeps what arrived (tus: the server should),
  // unless a checksum was given (then nothing can be verified: discarded).
  Result<UploadStatus> CommitReceived();
  // Keeps the in-flight marker fresh; call every few seconds while writing.
  void Heartbeat();

 private:
  friend class Uploads;
  Chunk() = default;
  Result<UploadStatus> CommitImpl(bool verify);
  void Discard();

  Uploads* uploads_ = nullptr;
  std::string id_, token_;
  uint64_t offset_ = 0, room_ = 0, received_ = 0;
  std::unique_ptr<storage::WritableFile> file_;
  std::optional<ChecksumSpec> checksum_;
  std::unique_ptr<class Digest> digest_;
  bool done_ = false;
  int64_t last_heartbeat_ms_ = 0;
};

// Thread-safe.
class Uploads {
 public:
  // `store` is rooted at UPLOAD_DIR.
  Uploads(storage::Store& store, const Clock& clock, UploadOptions options);
  ~Uploads();

  const UploadOptions& options() const { return options_; }

  // Starts an upload of `length` bytes under a new, valid id. too_large over
  // the maximum. A zero-length upload is complete at once.
  Result<UploadStatus> Create(const std::string& id, uint64_t length,
                              const std::map<std::string, std::string>& metadata);
  // not_found, or expired when its time passed without completing.
  Result<UploadStatus> Status(const std::string& id);
  // Starts appending at `offset` (must equal the current offset:
  // offset_mismatch; another request in flight there: busy). `declared` is the
  // request's Content-Length if known: over the remaining length ->
  // length_exceeded before anything is read.
  Result<std::unique_ptr<Chunk>> BeginChunk(const std::string& id, uint64_t offset,
                                            std::optional<ChecksumSpec> checksum,
                                            std::optional<uint64_t> declared);
  // Removes an unfinished upload's data (termination, expiry). A completed
  // upload's original is left alone (the video owns it then).
  Result<void> Terminate(const std::string& id);
  // Assembles the original if the chain covers the length and no original
  // exists (finishing the work of a process that died mid-assembly).
  // Returns whether the upload is complete.
  Result<bool> FinishIfComplete(const std::string& id);
  // Ids with unfinished upload state (<id>/upload/info.json present).
  Result<std::vector<std::string>> ListUnfinished();

 private:
  friend class Chunk;
  struct Link {
    uint64_t offset, length;
    std::string part;
    int64_t at_ms;
  };
  struct Chain {
    std::vector<Link> links;
    uint64_t end = 0;
    int64_t last_at_ms = 0;
  };
  struct Info {
    uint64_t length = 0;
    int64_t created_at_ms = 0;
    std::map<std::string, std::string> metadata;
  };
  Result<Info> ReadInfo(const std::string& id);
  Result<Chain> ReadChain(const std::string& id);  // cached prefix + fresh tail
  Result<UploadStatus> StatusOf(const std::string& id, const Info& info, const Chain& chain);
  Result<void> Assemble(const std::string& id, const Info& info, const Chain& chain);
  void Forget(const std::string& id);
  // Whether a busy marker's owner is certainly gone: written by this node
  // but not by a request in flight in this process.
  bool MarkerIsOurs(const std::string& marker_content);
  void EndFlight(const std::string& token);

  storage::Store& store_;
  const Clock& clock_;
  UploadOptions options_;
  std::mutex mu_;
  std::map<std::string, Chain> chains_;  // immutable records already read
  std::string instance_;                 // random per process
  std::map<std::string, int> inflight_;  // tokens of chunks being received here
};

}  // namespace hub::upload

template <>
struct std::is_error_code_enum<hub::upload::errc> : std::true_type {};
