// Model: vectors exported for other systems (ANN indexes, feature stores).
#include <stdexcept>

#include "model_internal.hpp"
#include "rtrec/epoch.hpp"
#include "rtrec/model.hpp"

namespace rtrec {
using namespace model_detail;

Model::Vectors Model::export_vectors(bool on_items, const IdBatch* ids) const {
  const EmbeddingTable& table = on_items ? items_ : users_;
  EpochGuard pin;  // rows stay these IDs until their keys and names are copied
  std::vector<uint32_t> rows;
  if (ids == nullptr) {
    for (uint32_t r = 0, n = table.size(); r < n; ++r)
      if (table.is_live(r)) rows.push_back(r);
  } else {
    table.check_kind(ids->names, ids->size);
    for (size_t i = 0; i < ids->size; ++i) {
      const std::string* name = ids->names != nullptr ? &ids->names[i] : nullptr;
      const uint32_t row = lookup(table, ids->keys[i], name);
      if (row == kNoRow)
        throw std::out_of_range(std::string(on_items ? "item " : "user ") +
                                (name != nullptr ? "'" + *name + "'" : std::to_string(int64_t(ids->keys[i]))) +
                                " is not in the model");
      rows.push_back(row);
    }
  }
  const uint32_t dim = config_.dim, stride = table.stride();
  Vectors out;
  out.keys.reserve(rows.size());
  out.values.resize(rows.size() * size_t(dim));
  out.biases.resize(rows.size());
  std::vector<float> buffer(stride);
  for (size_t i = 0; i < rows.size(); ++i) {
    const uint32_t r = rows[i];
    out.keys.push_back(table.key(r));
    if (table.kind() == IdKind::kString) out.names.push_back(table.name(r));
    out.biases[i] = on_items ? effective(items_, item_features_, r, buffer.data()) : user_query(r, buffer.data());
    std::copy(buffer.begin(), buffer.begin() + dim, out.values.begin() + i * dim);
  }
  return out;
}

}  // namespace rtrec
