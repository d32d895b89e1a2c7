#include "http/multipart.h"

#include <gtest/gtest.h>

#include <vector>

namespace hub::http {
namespace {

struct Collected {
  std::vector<FormPart> parts;
  std::vector<std::string> bodies;
};

MultipartCallbacks Collect(Collected& c) {
  MultipartCallbacks cb;
  cb.on_part_begin = [&c](const FormPart& p) -> Result<void> {
    c.parts.push_back(p);
    c.bodies.emplace_back();
    return Ok();
  };
  cb.on_data = [&c](std::span<const char> d) -> Result<void> {
    c.bodies.back().append(d.data(), d.size());
    return Ok();
  };
  cb.on_part_end = [] { return Ok(); };
  return cb;
}

constexpr char kBodyText[] =
    "preamble\r\n"
    "--XyZ\r\n"
    "Content-Disposition: form-data; name=\"title\"\r\n\r\n"
    "My clip\r\n"
    "--XyZ\r\n"
    "Content-Disposition: form-data; name=\"file\"; filename=\"a \\\"b\\\".mp4\"\r\n"
    "Content-Type: video/mp4\r\n\r\n"
    "\r\n--XyNOTZ binary\0data\r\n--Xy"
    "\r\n--XyZ--\r\nepilogue";
const std::string kBody(kBodyText, sizeof kBodyText - 1);  // holds a NUL

TEST(Multipart, ParsesFieldsAndFilesWhateverTheSplit) {
  const std::string& body = kBody;
  for (size_t step : {1u, 2u, 3u, 7u, 64u, 100000u}) {
    MultipartParser p("XyZ");
    Collected c;
    auto cb = Collect(c);
    for (size_t i = 0; i < body.size(); i += step) {
      ASSERT_TRUE(p.Feed(std::string_view(body).substr(i, step), cb).ok()) << step;
    }
    ASSERT_TRUE(p.Finish().ok());
    ASSERT_EQ(c.parts.size(), 2u);
    EXPECT_EQ(c.parts[0].name, "title");
    EXPECT_EQ(c.bodies[0], "My clip");
    EXPECT_EQ(c.parts[1].name, "file");
    EXPECT_EQ(c.parts[1].filename, "a \"b\".mp4");
    EXPECT_EQ(c.parts[1].content_type, "video/mp4");
    EXPECT_EQ(c.bodies[1], std::string("\r\n--XyNOTZ binary\0data\r\n--Xy", 28)) << step;
  }
}

TEST(Multipart, BoundaryFromContentType) {
  EXPECT_EQ(MultipartParser::BoundaryFrom("multipart/form-data; boundary=abc"), "abc");
  EXPECT_EQ(MultipartParser::BoundaryFrom("Multipart/Form-Data; charset=x; boundary=\"a b\""), "a b");
  EXPECT_EQ(MultipartParser::BoundaryFrom("multipart/form-data"), "");
  EXPECT_EQ(MultipartParser::BoundaryFrom("application/json; boundary=abc"), "");
  EXPECT_EQ(MultipartParser::BoundaryFrom("multipart/form-data; boundary=" + std::string(71, 'a')), "");
}

TEST(Multipart, MalformedBodiesAreRefused) {
  const std::vector<std::string> bad = {
      "--B\r\nno colon here\r\n\r\nx\r\n--B--",
      "--B\r\nContent-Disposition: attachment; name=\"x\"\r\n\r\nx\r\n--B--",
      "--B\r\nContent-Disposition: form-data\r\n\r\nx\r\n--B--",
      "--B\r\nContent-Disposition: form-data; name=\"unclosed\r\n\r\nx\r\n--B--",
      "--Bjunk",
      "--B\r\nContent-Disposition: form-data; name=\"a\"\r\n" + std::string(10000, 'x'),
  };
  for (const auto& body : bad) {
    MultipartParser p("B");
    Collected c;
    auto r = p.Feed(body, Collect(c));
    EXPECT_TRUE(!r.ok() || !p.Finish().ok()) << body.substr(0, 60);
  }
  // Truncated: never reaches the closing delimiter.
  MultipartParser p("B");
  Collected c;
  ASSERT_TRUE(p.Feed("--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\npartial", Collect(c)).ok());
  EXPECT_FALSE(p.Finish().ok());
}

TEST(Multipart, TooManyPartsAreRefused) {
  std::string body;
  for (int i = 0; i < 40; ++i) body += "--B\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nv\r\n";
  body += "--B--";
  MultipartParser p("B");
  Collected c;
  EXPECT_FALSE(p.Feed(body, Collect(c)).ok());
}

TEST(Multipart, CallbackErrorsStopParsing) {
  MultipartParser p("B");
  MultipartCallbacks cb;
  cb.on_part_begin = [](const FormPart&) -> Result<void> {
    return MakeError(std::make_error_code(std::errc::no_space_on_device), "full");
  };
  auto r = p.Feed("--B\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nv\r\n--B--", cb);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "full");
}

}  // namespace
}  // namespace hub::http
