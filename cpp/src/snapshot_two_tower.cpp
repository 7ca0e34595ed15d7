// The two_tower family's snapshot section: the tower's parameters and each user's recent
// positives (layout in snapshot_format.hpp). mf writes the section empty.
#include <cmath>

#include "snapshot_format.hpp"

namespace rtrec {
namespace snapshot_detail {

void write_two_tower(Writer& w, const Model::StateAccess& state, const std::vector<uint32_t>& user_rows,
                     uint32_t n_items, const std::vector<uint32_t>* in_file) {
  const Model& m = state.model();
  if (state.tower() == nullptr) {  // mf: an empty section
    w.value<uint64_t>(0);
    w.value<uint32_t>(0);
    w.end_section("two_tower");
    return;
  }
  // Copied while other threads may step: Hogwild-consistent, like the rows.
  const DenseTower& tower = *state.tower();
  std::vector<float> parameters(tower.parameters(), tower.parameters() + tower.parameter_count());
  w.value<uint64_t>(parameters.size());
  w.bytes(parameters.data(), parameters.size() * 4);
  w.value<uint32_t>(static_cast<uint32_t>(user_rows.size()));
  std::vector<uint32_t> recent(m.config().history);
  std::vector<uint64_t> keys;
  for (uint32_t u : user_rows) {
    keys.clear();
    const uint32_t n = state.history(u, recent.data());
    for (uint32_t k = n; k-- > 0;) {  // oldest first
      const uint32_t i = recent[k];
      if (i >= n_items) continue;  // created after the cut: the next file has it
      if (in_file != nullptr ? (*in_file)[i] != EmbeddingTable::kNotFound : m.items().is_live(i)) keys.push_back(m.items().key(i));
    }
    w.value<uint32_t>(static_cast<uint32_t>(keys.size()));
    w.bytes(keys.data(), keys.size() * 8);
  }
  w.end_section("two_tower");
}

TwoTowerImage read_two_tower(Reader& r, const ModelConfig& c, uint32_t user_rows) {
  TwoTowerImage t;
  const uint64_t count = r.value<uint64_t>();
  r.expect_room(count, 4, "two_tower");
  t.parameters.resize(count);
  r.bytes(t.parameters.data(), count * 4);
  for (float v : t.parameters)
    if (!std::isfinite(v)) r.fail("corrupted file (a non-finite tower parameter)");
  const uint32_t users = r.value<uint32_t>();
  const bool two_tower = c.family == Family::kTwoTower;
  if (users != (two_tower ? user_rows : 0)) r.fail("corrupted file (histories do not match the users)");
  t.histories.resize(users);
  for (auto& history : t.histories) {
    const uint32_t n = r.value<uint32_t>();
    if (n > c.history) r.fail("corrupted file (a history longer than the model keeps)");
    history.resize(n);
    r.bytes(history.data(), size_t(n) * 8);
  }
  r.end_section("two_tower");
  return t;
}

void apply_two_tower(Reader& r, Model::Import& import, const TwoTowerImage& image,
                     const std::vector<uint32_t>& user_rows, bool full) {
  const Model& m = import.model();
  if (import.tower() == nullptr) return;  // mf
  if (image.parameters.size() != import.tower()->parameter_count()) r.fail("corrupted file (the tower does not match the model)");
  import.set_tower(image.parameters.data());
  std::vector<uint32_t> items;
  for (size_t u = 0; u < image.histories.size(); ++u) {
    items.clear();
    for (uint64_t key : image.histories[u]) {
      const uint32_t row = m.items().find(key);
      if (row != EmbeddingTable::kNotFound) items.push_back(row);
      else if (full) r.fail("corrupted file (a history names an item that is not in the file)");
    }
    if (user_rows[u] != EmbeddingTable::kNotFound) import.set_history(user_rows[u], items.data(), uint32_t(items.size()));
  }
}

// ------------------------------------------------------------------------ evicted keys, sketches

}  // namespace snapshot_detail
}  // namespace rtrec
