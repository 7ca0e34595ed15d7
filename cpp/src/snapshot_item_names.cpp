// The item-names section of snapshot and delta files (format version >= 6), after the
// evicted keys (and before a full snapshot's admission sketches, which stay last): a count, then per name its item key, its length and its UTF-8 bytes, in key
// order. A full snapshot holds every name; a delta the names set since the previous cut.
#include "snapshot_format.hpp"

namespace rtrec {
namespace snapshot_detail {

void write_item_names(Writer& w, const std::vector<ItemNames::Entry>& names) {
  w.value<uint64_t>(names.size());
  for (const ItemNames::Entry& e : names) {
    w.value<uint64_t>(e.key);
    w.value<uint32_t>(static_cast<uint32_t>(e.name.size()));
    w.bytes(e.name.data(), e.name.size());
  }
  w.end_section("item names");
}

std::vector<ItemNames::Entry> read_item_names(Reader& r) {
  const uint64_t n = r.value<uint64_t>();
  r.expect_room(n, 8 + 4, "item names");
  std::vector<ItemNames::Entry> out(n);
  for (uint64_t i = 0; i < n; ++i) {
    out[i].key = r.value<uint64_t>();
    const uint32_t length = r.value<uint32_t>();
    if (length == 0 || length > ItemNames::kMaxNameBytes) r.fail("corrupted file (bad item name length)");
    r.expect_room(length, 1, "item names");
    out[i].name.resize(length);
    r.bytes(&out[i].name[0], length);
    if (out[i].name.find('\0') != std::string::npos) r.fail("corrupted file (NUL in an item name)");
  }
  r.end_section("item names");
  return out;
}

void apply_item_names(ItemNames& store, const std::vector<ItemNames::Entry>& names) {
  std::vector<uint64_t> keys(names.size());
  std::vector<std::string> text(names.size());
  for (size_t i = 0; i < names.size(); ++i) keys[i] = names[i].key, text[i] = names[i].name;
  // Generation 0: restored names are not "changed" (a model's next delta holds what changes
  // after loading, as for rows).
  const std::atomic<uint32_t> unmarked{0};
  store.set(keys.data(), text.data(), keys.size(), unmarked);
}

}  // namespace snapshot_detail
}  // namespace rtrec
