#pragma once
// Incremental digests for the tus checksum extension (OpenSSL EVP).

#include <memory>
#include <span>
#include <string>

#include "upload/tus_headers.h"

namespace hub::upload {

class Digest {
 public:
  explicit Digest(ChecksumAlgorithm algorithm);
  ~Digest();
  Digest(const Digest&) = delete;
  Digest& operator=(const Digest&) = delete;
  void Update(std::span<const char> data);
  std::string Final();  // raw bytes; call once

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hub::upload
