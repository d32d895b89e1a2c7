// FaultyStore: fault injection by countdown (STYLE.md #10). A failed call
// never reaches the inner store, so it has no effect at all: that is the
// harshest case for callers that must not lose what they committed before.

#include <mutex>

#include "storage/detail/store_internal.h"
#include "storage/store.h"

namespace hub::storage {
namespace {

// The countdown, shared with the WritableFiles handed out (they may outlive
// the store).
class Countdown {
 public:
  // Counts one mutating call; an error if it must fail.
  Result<void> Take(std::string_view op, std::string_view path) {
    std::lock_guard lock(mu_);
    ++calls_;
    if (ok_left_ < 0) return Ok();
    if (ok_left_ > 0) {
      --ok_left_;
      return Ok();
    }
    return detail::Fail(fail_with_, "injected fault: " + std::string(op) + " " +
                                        detail::Quote(path) + " (" +
                                        make_error_code(fail_with_).message() + ")");
  }

  void FailAfter(int ok_ops, errc fail_with) {
    std::lock_guard lock(mu_);
    ok_left_ = ok_ops < 0 ? 0 : ok_ops;
    fail_with_ = fail_with;
  }

  void Reset() {
    std::lock_guard lock(mu_);
    ok_left_ = -1;
    calls_ = 0;
  }

  int calls() const {
    std::lock_guard lock(mu_);
    return calls_;
  }

 private:
  mutable std::mutex mu_;
  int ok_left_ = -1;  // -1: never fail
  errc fail_with_ = errc::io_error;
  int calls_ = 0;
};

class FaultyWritableFile final : public WritableFile {
 public:
  FaultyWritableFile(std::unique_ptr<WritableFile> inner, std::shared_ptr<Countdown> countdown,
                     std::string path)
      : inner_(std::move(inner)), countdown_(std::move(countdown)), path_(std::move(path)) {}

  uint64_t size() const override { return inner_->size(); }

  Result<void> Append(std::span<const char> data) override {
    HUB_TRY(countdown_->Take("append to", path_));
    return inner_->Append(data);
  }
  Result<void> Truncate(uint64_t size) override {
    HUB_TRY(countdown_->Take("truncate", path_));
    return inner_->Truncate(size);
  }
  Result<void> Sync() override {
    HUB_TRY(countdown_->Take("sync", path_));
    return inner_->Sync();
  }
  // A failed Close still releases the inner file when this one is destroyed.
  Result<void> Close() override {
    HUB_TRY(countdown_->Take("close", path_));
    return inner_->Close();
  }

 private:
  const std::unique_ptr<WritableFile> inner_;
  const std::shared_ptr<Countdown> countdown_;
  const std::string path_;
};

class FaultyStoreImpl final : public FaultyStore {
 public:
  explicit FaultyStoreImpl(Store* inner) : inner_(inner) {}

  void FailAfter(int ok_ops, errc fail_with) override { countdown_->FailAfter(ok_ops, fail_with); }
  void Reset() override { countdown_->Reset(); }
  int mutating_calls() const override { return countdown_->calls(); }

  Result<std::unique_ptr<ReadableFile>> OpenRead(std::string_view path) override {
    return inner_->OpenRead(path);
  }
  Result<std::string> ReadAll(std::string_view path, size_t max_bytes) override {
    return inner_->ReadAll(path, max_bytes);
  }
  Result<void> WriteAtomic(std::string_view path, std::string_view data) override {
    HUB_TRY(countdown_->Take("write", path));
    return inner_->WriteAtomic(path, data);
  }
  Result<void> CreateExclusive(std::string_view path, std::string_view data) override {
    HUB_TRY(countdown_->Take("create", path));
    return inner_->CreateExclusive(path, data);
  }
  Result<std::unique_ptr<WritableFile>> OpenWrite(std::string_view path, bool create) override {
    HUB_TRY(countdown_->Take("open for writing", path));
    auto file = inner_->OpenWrite(path, create);
    if (!file) return file.error();
    return std::unique_ptr<WritableFile>(
        std::make_unique<FaultyWritableFile>(std::move(*file), countdown_, std::string(path)));
  }
  Result<FileInfo> Stat(std::string_view path) override { return inner_->Stat(path); }
  Result<std::vector<std::string>> List(std::string_view dir) override { return inner_->List(dir); }
  Result<void> Rename(std::string_view from, std::string_view to) override {
    HUB_TRY(countdown_->Take("rename", std::string(from) + " to " + std::string(to)));
    return inner_->Rename(from, to);
  }
  Result<void> Remove(std::string_view path) override {
    HUB_TRY(countdown_->Take("remove", path));
    return inner_->Remove(path);
  }
  Result<void> RemoveAll(std::string_view path) override {
    HUB_TRY(countdown_->Take("remove", path));
    return inner_->RemoveAll(path);
  }
  Result<void> Touch(std::string_view path) override {
    HUB_TRY(countdown_->Take("touch", path));
    return inner_->Touch(path);
  }
  Result<SpaceInfo> Space() override { return inner_->Space(); }
  std::string Describe() const override { return "faulty(" + inner_->Describe() + ")"; }

 private:
  Store* const inner_;
  const std::shared_ptr<Countdown> countdown_ = std::make_shared<Countdown>();
};

}  // namespace

std::unique_ptr<FaultyStore> NewFaultyStore(Store* inner) {
  return std::make_unique<FaultyStoreImpl>(inner);
}

}  // namespace hub::storage
