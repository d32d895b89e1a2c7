// Fuzzes the edit decoder of the notepad's API: a request body as the REST
// and WebSocket handlers receive it ({"base", "edits"}), parsed, shape-checked
// and applied to a document at its current and at an older version. Whatever
// is accepted must leave a consistent document; whatever is refused must leave
// it unchanged.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string_view>

#include "notes/doc.h"
#include "notes/edits_json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hub::notes;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto body = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object() || !body.contains("edits")) return 0;
  auto edits = ParseEditsJson(body["edits"]);
  if (!edits.ok()) return 0;
  (void)EditsToJson(*edits).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  Doc d(DocOptions{.agent = "fuzz", .max_size_bytes = 1 << 16});
  if (!d.Apply(std::vector<Edit>{{0, 0, "héllo wörld 😀"}}).ok()) __builtin_trap();
  Version old = d.version();
  if (!d.Apply(std::vector<Edit>{{6, 5, "there"}}).ok()) __builtin_trap();
  for (const Version& base : {d.version(), old}) {
    std::string before = d.Text();
    Version v = d.version();
    auto r = d.Apply(base, *edits);
    if (!r.ok() && (d.Text() != before || !(d.version() == v))) __builtin_trap();
    if (d.Text().size() != d.Size()) __builtin_trap();
    auto changes = d.ChangesSince(v);
    if (!changes.ok()) __builtin_trap();
  }
  return 0;
}
