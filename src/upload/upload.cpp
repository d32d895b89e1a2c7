#include "upload/upload.h"

#include <nlohmann/json.hpp>

#include "core/ids.h"
#include "upload/checksum.h"

namespace hub::upload {
namespace {

using serr = storage::errc;
using json = nlohmann::json;

class Category : public std::error_category {
 public:
  const char* name() const noexcept override { return "upload"; }
  std::string message(int c) const override {
    switch (static_cast<upload::errc>(c)) {
      case upload::errc::not_found: return "upload not found";
      case upload::errc::bad_request: return "bad request";
      case upload::errc::unsupported_checksum: return "unsupported checksum algorithm";
      case upload::errc::offset_mismatch: return "offset mismatch";
      case upload::errc::busy: return "another request is uploading";
      case upload::errc::too_large: return "upload too large";
      case upload::errc::length_exceeded: return "more bytes than the declared length";
      case upload::errc::checksum_mismatch: return "checksum mismatch";
      case upload::errc::expired: return "upload expired";
      case upload::errc::no_space: return "storage full";
      case upload::errc::io_error: return "storage error";
    }
    return "unknown";
  }
};

constexpr size_t kMaxRecordBytes = 64 * 1024;
constexpr int64_t kHeartbeatMs = 5'000;

std::string Dir(const std::string& id) { return id + "/upload"; }
std::string InfoPath(const std::string& id) { return id + "/upload/info.json"; }
std::string ChunkPath(const std::string& id, uint64_t offset) {
  return id + "/upload/chunks/" + std::to_string(offset);
}
std::string PartPath(const std::string& id, const std::string& token) {
  return id + "/upload/parts/" + token;
}
std::string BusyPath(const std::string& id, uint64_t offset) {
  return id + "/upload/busy-" + std::to_string(offset);
}
std::string OriginalPath(const std::string& id) { return id + "/original"; }

// Storage errors become upload errors, keeping the message.
Error FromStorage(const Error& e) {
  if (e.code == serr::no_space) {
    return MakeError(upload::errc::no_space,
                     "the storage is full; free space and resume the upload (" + e.message + ")");
  }
  if (e.code == serr::not_found) return MakeError(upload::errc::not_found, e.message);
  return MakeError(upload::errc::io_error, e.message);
}

}  // namespace

const std::error_category& category() {
  static Category c;
  return c;
}

// ---- Chunk ----

Chunk::~Chunk() {
  if (!done_) Discard();
}

Result<void> Chunk::Write(std::span<const char> data) {
  if (done_) return MakeError(upload::errc::io_error, "chunk already finished");
  if (data.size() > room_ - received_) {
    return MakeError(upload::errc::length_exceeded,
                     "the request carries more bytes than the upload's declared length");
  }
  auto r = file_->Append(data);
  if (!r) return FromStorage(r.error());
  if (digest_) digest_->Update(data);
  received_ += data.size();
  return Ok();
}

void Chunk::Heartbeat() {
  int64_t now = uploads_->clock_.NowUnixMillis();
  if (now - last_heartbeat_ms_ < kHeartbeatMs) return;
  last_heartbeat_ms_ = now;
  (void)uploads_->store_.Touch(BusyPath(id_, offset_));
}

Result<UploadStatus> Chunk::Commit() { return CommitImpl(true); }

Result<UploadStatus> Chunk::CommitReceived() {
  if (checksum_) {
    Discard();
    return MakeError(upload::errc::checksum_mismatch,
                     "the request ended before its checksummed chunk was complete; it was discarded");
  }
  return CommitImpl(false);
}

Result<UploadStatus> Chunk::CommitImpl(bool verify) {
  if (done_) return MakeError(upload::errc::io_error, "chunk already finished");
  if (verify && checksum_) {
    if (digest_->Final() != checksum_->digest) {
      Discard();
      return MakeError(upload::errc::checksum_mismatch,
                       "the chunk does not match its Upload-Checksum; it was discarded, send it again");
    }
  }
  if (received_ == 0) {
    Discard();
    return uploads_->Status(id_);
  }
  storage::Store& store = uploads_->store_;
  if (auto r = file_->Sync(); !r) {
    Discard();
    return FromStorage(r.error());
  }
  if (auto r = file_->Close(); !r) {
    Discard();
    return FromStorage(r.error());
  }
  json record = {{"part", token_}, {"length", received_}, {"at", uploads_->clock_.NowUnixMillis()}};
  auto created = store.CreateExclusive(ChunkPath(id_, offset_), record.dump());
  if (!created) {
    Discard();
    if (created.code() == serr::already_exists) {
      return MakeError(upload::errc::offset_mismatch,
                       "another request appended at this offset first; ask for the offset again");
    }
    return FromStorage(created.error());
  }
  done_ = true;
  uploads_->EndFlight(token_);
  (void)store.Remove(BusyPath(id_, offset_));
  auto finished = uploads_->FinishIfComplete(id_);
  if (!finished) return finished.error();
  return uploads_->Status(id_);
}

void Chunk::Discard() {
  if (done_) return;
  done_ = true;
  uploads_->EndFlight(token_);
  if (file_) (void)file_->Close();
  (void)uploads_->store_.Remove(PartPath(id_, token_));
  (void)uploads_->store_.Remove(BusyPath(id_, offset_));
}

// ---- Uploads ----

Uploads::Uploads(storage::Store& store, const Clock& clock, UploadOptions options)
    : store_(store), clock_(clock), options_(std::move(options)), instance_(RandomHex(6)) {}

bool Uploads::MarkerIsOurs(const std::string& content) {
  // "<node> <instance> <token>"
  size_t a = content.find(' ');
  size_t b = a == std::string::npos ? a : content.find(' ', a + 1);
  if (b == std::string::npos || content.substr(0, a) != options_.node_id) return false;
  if (content.substr(a + 1, b - a - 1) != instance_) return true;  // an earlier run of this node
  std::lock_guard lock(mu_);
  return inflight_.count(content.substr(b + 1)) == 0;
}

void Uploads::EndFlight(const std::string& token) {
  std::lock_guard lock(mu_);
  inflight_.erase(token);
}

Uploads::~Uploads() = default;

Result<UploadStatus> Uploads::Create(const std::string& id, uint64_t length,
                                     const std::map<std::string, std::string>& metadata) {
  if (!IsValidId(id)) return MakeError(upload::errc::bad_request, "invalid upload id");
  if (length > options_.max_size_bytes) {
    return MakeError(upload::errc::too_large,
                     "Upload-Length " + std::to_string(length) + " is over the maximum of " +
                         std::to_string(options_.max_size_bytes) + " bytes (MAX_UPLOAD_SIZE_MB)");
  }
  json info = {{"length", length}, {"created_at_ms", clock_.NowUnixMillis()}, {"metadata", metadata}};
  auto r = store_.CreateExclusive(InfoPath(id), info.dump());
  if (!r) {
    if (r.code() == serr::already_exists) {
      return MakeError(upload::errc::bad_request, "an upload with this id exists");
    }
    return FromStorage(r.error());
  }
  if (length == 0) {
    // Nothing will ever be PATCHed: the (empty) original exists at once.
    if (auto w = store_.WriteAtomic(OriginalPath(id), ""); !w) return FromStorage(w.error());
  }
  return Status(id);
}

Result<Uploads::Info> Uploads::ReadInfo(const std::string& id) {
  auto text = store_.ReadAll(InfoPath(id), kMaxRecordBytes);
  if (!text) return FromStorage(text.error());
  Info info;
  try {
    json j = json::parse(*text);
    info.length = j.at("length").get<uint64_t>();
    info.created_at_ms = j.at("created_at_ms").get<int64_t>();
    info.metadata = j.at("metadata").get<std::map<std::string, std::string>>();
  } catch (const std::exception& e) {
    return MakeError(upload::errc::io_error, "upload record of " + id + " is corrupt: " + e.what());
  }
  return info;
}

Result<Uploads::Chain> Uploads::ReadChain(const std::string& id) {
  Chain chain;
  {
    std::lock_guard lock(mu_);
    if (auto it = chains_.find(id); it != chains_.end()) chain = it->second;
  }
  // Records are immutable: only the tail past the cached end can be new.
  // Each is found by open() of its exact name (fresh on NFS), never by readdir.
  size_t before = chain.links.size();
  for (;;) {
    auto text = store_.ReadAll(ChunkPath(id, chain.end), kMaxRecordBytes);
    if (!text) {
      if (text.code() == serr::not_found) break;
      return FromStorage(text.error());
    }
    Link link;
    bool valid = true;
    try {
      json j = json::parse(*text);
      link = Link{chain.end, j.at("length").get<uint64_t>(), j.at("part").get<std::string>(),
                  j.at("at").get<int64_t>()};
      valid = link.length > 0 && IsValidId(link.part);
    } catch (const std::exception&) {
      valid = false;
    }
    if (!valid) {
      // A record being written right now reads as empty or partial: not yet
      // committed. One left torn by a crash (older than the busy window)
      // would block the offset forever: remove it so it can be claimed again.
      auto st = store_.Stat(ChunkPath(id, chain.end));
      if (st && clock_.NowUnixMillis() - st->mtime_unix_nanos / 1'000'000 > options_.busy_stale_ms) {
        (void)store_.Remove(ChunkPath(id, chain.end));
      }
      break;
    }
    chain.end += link.length;
    chain.last_at_ms = std::max(chain.last_at_ms, link.at_ms);
    chain.links.push_back(std::move(link));
  }
  if (chain.links.size() != before) {
    std::lock_guard lock(mu_);
    chains_[id] = chain;
  }
  return chain;
}

Result<UploadStatus> Uploads::StatusOf(const std::string& id, const Info& info, const Chain& chain) {
  UploadStatus s;
  s.id = id;
  s.length = info.length;
  s.offset = std::min(chain.end, info.length);
  s.created_at_ms = info.created_at_ms;
  s.metadata = info.metadata;
  s.expires_at_ms = std::max(info.created_at_ms, chain.last_at_ms) + options_.expiry_ms;
  return s;
}

Result<UploadStatus> Uploads::Status(const std::string& id) {
  if (!IsValidId(id)) return MakeError(upload::errc::not_found, "no such upload");
  auto info = ReadInfo(id);
  if (!info) {
    if (info.code() != upload::errc::not_found) return info.error();
    // No upload state: complete (original present) or unknown.
    auto original = store_.Stat(OriginalPath(id));
    if (!original) return MakeError(upload::errc::not_found, "no such upload");
    UploadStatus s;
    s.id = id;
    s.length = s.offset = original->size;
    s.complete = true;
    return s;
  }
  auto chain = ReadChain(id);
  if (!chain) return chain.error();
  auto s = StatusOf(id, *info, *chain);
  if (!s) return s;
  if (store_.Stat(OriginalPath(id)).ok()) {
    s->complete = true;
    s->offset = s->length;
    s->expires_at_ms = 0;
    return s;
  }
  if (s->offset < s->length && clock_.NowUnixMillis() >= s->expires_at_ms) {
    return MakeError(upload::errc::expired, "this upload expired; start it again");
  }
  return s;
}

Result<std::unique_ptr<Chunk>> Uploads::BeginChunk(const std::string& id, uint64_t offset,
                                                   std::optional<ChecksumSpec> checksum,
                                                   std::optional<uint64_t> declared) {
  auto status = Status(id);
  if (!status) return status.error();
  if (status->complete || offset != status->offset) {
    return MakeError(upload::errc::offset_mismatch,
                     "Upload-Offset " + std::to_string(offset) + " does not match the upload's offset " +
                         std::to_string(status->offset));
  }
  uint64_t room = status->length - status->offset;
  if (declared && *declared > room) {
    return MakeError(upload::errc::length_exceeded,
                     "the request's " + std::to_string(*declared) + " bytes would pass the declared "
                     "Upload-Length (" + std::to_string(room) + " bytes remain)");
  }
  // Advisory marker: a second request at the same offset learns at once that
  // it would lose. Correctness does not depend on it (the commit record does).
  std::string token = RandomHex(12);
  std::string marker = options_.node_id + " " + instance_ + " " + token;
  {
    std::lock_guard lock(mu_);
    inflight_[token] = 1;
  }
  auto busy = store_.CreateExclusive(BusyPath(id, offset), marker);
  if (!busy && busy.code() == serr::already_exists) {
    auto content = store_.ReadAll(BusyPath(id, offset), 1024);
    auto st = store_.Stat(BusyPath(id, offset));
    int64_t age_ms = st ? clock_.NowUnixMillis() - st->mtime_unix_nanos / 1'000'000 : INT64_MAX;
    if (!(content && MarkerIsOurs(*content)) && age_ms < options_.busy_stale_ms) {
      EndFlight(token);
      return MakeError(upload::errc::busy,
                       "another request is uploading to this offset right now; retry after it ends");
    }
    (void)store_.Remove(BusyPath(id, offset));
    busy = store_.CreateExclusive(BusyPath(id, offset), marker);
    if (!busy && busy.code() == serr::already_exists) {
      EndFlight(token);
      return MakeError(upload::errc::busy, "another request is uploading to this offset right now");
    }
  }
  if (!busy) {
    EndFlight(token);
    return FromStorage(busy.error());
  }
  auto file = store_.OpenWrite(PartPath(id, token), /*create=*/true);
  if (!file) {
    EndFlight(token);
    (void)store_.Remove(BusyPath(id, offset));
    return FromStorage(file.error());
  }
  std::unique_ptr<Chunk> chunk(new Chunk());
  chunk->uploads_ = this;
  chunk->id_ = id;
  chunk->token_ = token;
  chunk->offset_ = offset;
  chunk->room_ = room;
  chunk->file_ = std::move(*file);
  chunk->checksum_ = std::move(checksum);
  if (chunk->checksum_) chunk->digest_ = std::make_unique<Digest>(chunk->checksum_->algorithm);
  chunk->last_heartbeat_ms_ = clock_.NowUnixMillis();
  return chunk;
}

Result<void> Uploads::Assemble(const std::string& id, const Info& info, const Chain& chain) {
  // One part covering everything (one PATCH, the usual case): no copy.
  if (chain.links.size() == 1 && chain.links[0].length == info.length) {
    auto r = store_.Rename(PartPath(id, chain.links[0].part), OriginalPath(id));
    // not_found: another process renamed it a moment ago.
    if (!r && r.code() != serr::not_found) return FromStorage(r.error());
    if (!r && !store_.Stat(OriginalPath(id)).ok()) return FromStorage(r.error());
    return Ok();
  }
  std::string tmp = Dir(id) + "/assembly-" + RandomHex(8);
  auto out = store_.OpenWrite(tmp, true);
  if (!out) return FromStorage(out.error());
  for (const Link& link : chain.links) {
    auto in = store_.OpenRead(PartPath(id, link.part));
    if (!in) {
      (void)store_.Remove(tmp);
      if (store_.Stat(OriginalPath(id)).ok()) return Ok();  // someone else finished
      return FromStorage(in.error());
    }
    if ((*in)->size() < link.length) {
      (void)store_.Remove(tmp);
      return MakeError(upload::errc::io_error, "a part of upload " + id + " is shorter than its record");
    }
    if (auto w = (*out)->AppendFrom(**in, 0, link.length); !w) {
      (void)store_.Remove(tmp);
      return FromStorage(w.error());
    }
  }
  if (auto r = (*out)->Sync(); !r) {
    (void)store_.Remove(tmp);
    return FromStorage(r.error());
  }
  (void)(*out)->Close();
  if (auto r = store_.Rename(tmp, OriginalPath(id)); !r) {
    (void)store_.Remove(tmp);
    return FromStorage(r.error());
  }
  return Ok();
}

Result<bool> Uploads::FinishIfComplete(const std::string& id) {
  // info.json and the chunk records stay after completion (they are tiny):
  // a request that raced the last chunk then finds its offset taken instead
  // of recreating a removed directory. Only the parts' bytes are removed.
  if (store_.Stat(OriginalPath(id)).ok()) {
    (void)store_.RemoveAll(Dir(id) + "/parts");
    Forget(id);
    return true;
  }
  auto info = ReadInfo(id);
  if (!info) return info.error();
  auto chain = ReadChain(id);
  if (!chain) return chain.error();
  if (chain->end < info->length) return false;
  HUB_TRY(Assemble(id, *info, *chain));
  (void)store_.RemoveAll(Dir(id) + "/parts");
  Forget(id);
  return true;
}

Result<void> Uploads::Terminate(const std::string& id) {
  if (!IsValidId(id)) return MakeError(upload::errc::not_found, "no such upload");
  if (!store_.Stat(InfoPath(id)).ok() || store_.Stat(OriginalPath(id)).ok()) {
    return MakeError(upload::errc::not_found, "no such unfinished upload");
  }
  auto r = store_.RemoveAll(Dir(id));
  Forget(id);
  if (!r) return FromStorage(r.error());
  return Ok();
}

Result<std::vector<std::string>> Uploads::ListUnfinished() {
  auto names = store_.List("");
  if (!names) {
    if (names.code() == serr::not_found) return std::vector<std::string>{};
    return FromStorage(names.error());
  }
  std::vector<std::string> out;
  for (const auto& n : *names) {
    if (IsValidId(n) && store_.Stat(InfoPath(n)).ok() && !store_.Stat(OriginalPath(n)).ok()) {
      out.push_back(n);
    }
  }
  return out;
}

void Uploads::Forget(const std::string& id) {
  std::lock_guard lock(mu_);
  chains_.erase(id);
}

}  // namespace hub::upload
