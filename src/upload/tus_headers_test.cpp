#include "upload/tus_headers.h"

#include <gtest/gtest.h>

#include "upload/upload.h"

namespace hub::upload {

TEST(TusHeaders, ParseUintIsStrict) {
  EXPECT_EQ(*ParseUint("0", "Upload-Offset"), 0u);
  EXPECT_EQ(*ParseUint("18446744073709551615", "Upload-Offset"), UINT64_MAX);
  for (const char* bad : {"", "-1", "+1", " 1", "1 ", "0x10", "1e3", "18446744073709551616",
                          "99999999999999999999", "1.0"}) {
    EXPECT_FALSE(ParseUint(bad, "Upload-Offset").ok()) << bad;
  }
}

TEST(TusHeaders, MetadataPairs) {
  auto m = ParseMetadata("filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential,title w6lsw6k=");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->at("filename"), "world_domination_plan.pdf");
  EXPECT_EQ(m->at("is_confidential"), "");
  EXPECT_EQ(m->at("title"), "\xc3\xa9l\xc3\xa9");
  EXPECT_TRUE(ParseMetadata("").ok());
  EXPECT_TRUE(ParseMetadata("a YQ==, b Yg==").ok());
}

TEST(TusHeaders, MalformedMetadataIsRefusedWithAReason) {
  for (const std::string& bad : std::vector<std::string>{",", "a YQ==,", " ", "a YQ", "a Y!==", "a YQ== extra", "a YQ==,a Yg==",
                          "k\x01 YQ==", "a ====", "a YR==", std::string(9000, 'a')}) {
    auto r = ParseMetadata(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.code(), errc::bad_request);
      EXPECT_NE(r.error().message.find("Upload-Metadata"), std::string::npos);
    }
  }
}

TEST(TusHeaders, Checksum) {
  auto c = ParseChecksum("sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->algorithm, ChecksumAlgorithm::kSha1);
  EXPECT_EQ(c->digest.size(), 20u);
  EXPECT_EQ(ParseChecksum("crc32 AAAAAA==").code(), errc::unsupported_checksum);
  EXPECT_EQ(ParseChecksum("sha1").code(), errc::bad_request);
  EXPECT_EQ(ParseChecksum("sha1 AAAA").code(), errc::bad_request);       // wrong length
  EXPECT_EQ(ParseChecksum("sha256 not-base64").code(), errc::bad_request);
}

TEST(TusHeaders, Base64RoundTrip) {
  for (const std::string& s : std::vector<std::string>{"", "f", "fo", "foo", "foob", "fooba", "foobar", std::string("\0\xff", 2)}) {
    EXPECT_EQ(*Base64Decode(Base64Encode(s)), s);
  }
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_FALSE(Base64Decode("Zg").has_value());
  EXPECT_FALSE(Base64Decode("Zg=a").has_value());
  EXPECT_FALSE(Base64Decode("=Zg=").has_value());
}

}  // namespace hub::upload
