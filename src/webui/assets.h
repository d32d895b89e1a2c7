#pragma once
// The browser UI, embedded in the executable at build time from web/.

#include <string_view>

namespace hub::webui {

struct Asset {
  std::string_view path;          // URL path, e.g. "/static/app.js"
  std::string_view content_type;  // e.g. "text/javascript; charset=utf-8"
  std::string_view body;
  std::string_view etag;          // strong, quoted; a hash of the body
};

// The asset at a URL path, or nullptr.
const Asset* FindAsset(std::string_view path);

}  // namespace hub::webui
