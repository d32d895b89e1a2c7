// Fuzzes every decoder of the notes CRDT: version tokens, encoded operations
// and snapshots. Whatever is accepted must leave a consistent document.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "notes/doc.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hub::notes;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  if (auto v = Version::Decode(in); v.ok()) {
    auto again = Version::Decode(v->Encode());
    if (!again.ok() || !(*again == *v)) __builtin_trap();
  }
  auto check = [](const Doc& d) {
    if (d.Text().size() != d.Size()) __builtin_trap();
  };
  if (auto d = Doc::Load(in); d.ok()) check(*d);
  Doc d(DocOptions{.agent = "fuzz"});
  (void)d.ApplyRemote(in);
  check(d);
  return 0;
}
