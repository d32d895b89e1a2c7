#include "upload/checksum.h"

#include <openssl/evp.h>

#include <stdexcept>

namespace hub::upload {

struct Digest::Impl {
  EVP_MD_CTX* ctx = nullptr;
};

Digest::Digest(ChecksumAlgorithm algorithm) : impl_(std::make_unique<Impl>()) {
  const EVP_MD* md = algorithm == ChecksumAlgorithm::kSha1  ? EVP_sha1()
                     : algorithm == ChecksumAlgorithm::kMd5 ? EVP_md5()
                                                            : EVP_sha256();
  impl_->ctx = EVP_MD_CTX_new();
  if (impl_->ctx == nullptr || EVP_DigestInit_ex(impl_->ctx, md, nullptr) != 1) {
    throw std::runtime_error("OpenSSL digest init failed");
  }
}

Digest::~Digest() { EVP_MD_CTX_free(impl_->ctx); }

void Digest::Update(std::span<const char> data) {
  EVP_DigestUpdate(impl_->ctx, data.data(), data.size());
}

std::string Digest::Final() {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(impl_->ctx, out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

}  // namespace hub::upload
