// The model families as types. Model owns the shared machinery (tables, seen sets, features,
// admission, eviction, retrieval, persistence) and calls through ModelFamily for what differs:
// how a user is encoded (user_query, history_query), how an event's step flows back (learn,
// fit), what a user carries besides its ID row (two_tower: the ring of recent positives, and
// the shared tower), explain, and the family's share of memory.
//
// model_family.cpp holds the only switch on ModelConfig::family (create, family_shape). A third
// family is a subclass in files of its own and one case there. The families are nested in
// Model so that they reach its rows and counters without widening Model's public interface.
// Internal to the core.
#pragma once

#include <memory>
#include <vector>

#include "model_internal.hpp"
#include "rtrec/model.hpp"

namespace rtrec {

// What a family asks of the shared tables, known before any model exists (Model's
// constructor builds its tables from it; the snapshot format reads it to size rows).
struct FamilyShape {
  bool zero_user_rows;  // user ID rows start at zero instead of random values
  bool item_inputs;     // each item row also carries an input vector (and its accumulator)
};
FamilyShape family_shape(Family family) noexcept;

class Model::ModelFamily {
 public:
  static std::unique_ptr<ModelFamily> create(Model& model);
  virtual ~ModelFamily() = default;

  // fit()'s epochs over the resolved batch (events not learned have weight 0 or kNoRow rows);
  // leaves in `events` only the events with weight > 0, which Model then marks as trained.
  virtual void fit(std::vector<Resolved>& events, const EventBatch& batch, uint32_t epochs, int threads,
                   uint64_t call) = 0;
  // update()'s step for one admitted event with weight > 0, its negatives drawn (sampled
  // losses). Writes into `inputs` the item rows whose input vectors the step changed and
  // returns how many (Model marks them for the next delta). Throws only std::bad_alloc.
  virtual uint32_t learn(const StepConfig& step, const Resolved& r, uint64_t user_key, uint64_t item_key,
                         const uint32_t* negatives, float* scratch, uint32_t* inputs, uint64_t& applied,
                         uint64_t& skipped) = 0;
  // The user's query vector into `out` (stride floats); returns the user-side bias.
  virtual float user_query(uint32_t user, float* out) const noexcept = 0;
  // The query vector of an anonymous history (see Model::history_query); `out` is zeroed.
  virtual void history_query(const uint32_t* rows, const float* weights, uint32_t n, float* out) const = 0;
  // explain()'s reasons for a known user and item (unsorted, all of them).
  virtual void explain(uint32_t user, uint32_t item, const float* item_vector, const float* query,
                       std::vector<Reason>& out) const = 0;
  // Whether a user's query is their effective vector (predict's plain path when no features).
  virtual bool query_is_user_vector() const noexcept = 0;
  // Whether a step reads item input vectors of rows other than its own (a fit then marks
  // every item for the next delta).
  virtual bool steps_read_item_inputs() const noexcept = 0;
  // Evicted rows are about to be reused: drop what the family keeps for them.
  virtual void forget(const std::vector<uint32_t>& users, const std::vector<uint8_t>& dead_items) = 0;
  virtual uint64_t memory_bytes() const noexcept = 0;
  // The family's own state, for persistence (null / none where the family has none): the
  // tower, the store of recent positives, and a user's recent positives that are still live
  // items, most recent first, into `out` (history capacity entries), returning how many.
  virtual DenseTower* tower() noexcept { return nullptr; }
  virtual HistoryStore* history() noexcept { return nullptr; }
  virtual uint32_t recent_items(uint32_t, uint32_t*) const noexcept { return 0; }

 protected:
  explicit ModelFamily(Model& model)
      : m_(model),
        config_(model.config_),
        users_(model.users_),
        items_(model.items_),
        user_features_(model.user_features_),
        item_features_(model.item_features_) {}

  Model& m_;
  // The model's parts every family works on, under their Model names.
  const ModelConfig& config_;
  EmbeddingTable& users_;
  EmbeddingTable& items_;
  FeatureSide& user_features_;
  FeatureSide& item_features_;
};

// mf: score = mu + b_u + b_i + <p_u, q_i>; the user's query is their effective vector
// (model_mf.cpp; the kernels' dispatch is Model::train_one, model_warp.cpp).
class Model::MfFamily final : public Model::ModelFamily {
 public:
  explicit MfFamily(Model& model) : ModelFamily(model) {}
  void fit(std::vector<Resolved>& events, const EventBatch& batch, uint32_t epochs, int threads, uint64_t call) override;
  uint32_t learn(const StepConfig& step, const Resolved& r, uint64_t user_key, uint64_t item_key,
                 const uint32_t* negatives, float* scratch, uint32_t* inputs, uint64_t& applied,
                 uint64_t& skipped) override;
  float user_query(uint32_t user, float* out) const noexcept override;
  void history_query(const uint32_t* rows, const float* weights, uint32_t n, float* out) const override;
  void explain(uint32_t user, uint32_t item, const float* item_vector, const float* query,
               std::vector<Reason>& out) const override;
  bool query_is_user_vector() const noexcept override { return true; }
  bool steps_read_item_inputs() const noexcept override { return false; }
  void forget(const std::vector<uint32_t>&, const std::vector<uint8_t>&) override {}
  uint64_t memory_bytes() const noexcept override { return 0; }
};

// two_tower: score = mu + b_i + <c_u, q_i>, c_u the tower's encoding of the user's ID row and
// the pool of their recent positives' input vectors (model_two_tower.cpp, the steps in
// two_tower_step.cpp).
class Model::TwoTowerFamily final : public Model::ModelFamily {
 public:
  explicit TwoTowerFamily(Model& model);
  void fit(std::vector<Resolved>& events, const EventBatch& batch, uint32_t epochs, int threads, uint64_t call) override;
  uint32_t learn(const StepConfig& step, const Resolved& r, uint64_t user_key, uint64_t item_key,
                 const uint32_t* negatives, float* scratch, uint32_t* inputs, uint64_t& applied,
                 uint64_t& skipped) override;
  float user_query(uint32_t user, float* out) const noexcept override;
  void history_query(const uint32_t* rows, const float* weights, uint32_t n, float* out) const override;
  void explain(uint32_t user, uint32_t item, const float* item_vector, const float* query,
               std::vector<Reason>& out) const override;
  bool query_is_user_vector() const noexcept override { return false; }
  bool steps_read_item_inputs() const noexcept override { return true; }
  void forget(const std::vector<uint32_t>& users, const std::vector<uint8_t>& dead_items) override;
  uint64_t memory_bytes() const noexcept override { return tower_->memory_bytes() + history_->memory_bytes(); }
  DenseTower* tower() noexcept override { return tower_.get(); }
  HistoryStore* history() noexcept override { return history_.get(); }
  uint32_t recent_items(uint32_t user, uint32_t* out) const noexcept override;

 private:
  // An event of a fit with its input history: positions [history_end - history_length,
  // history_end) of the fit's sequence array, the user's positives before it, oldest first.
  struct SequenceEvent {
    uint32_t user, item;
    float label, weight;
    uint32_t history_end, history_length;
  };
  // Events trained together by one two_tower_block call.
  struct Block;

  // Parts of the pool of these item rows' input vectors (most recent first, recency-weighted).
  void history_parts(const uint32_t* items, uint32_t n, std::vector<Part>& out) const;
  // Adds an event to `block` (`history`: the user's positives before it, most recent first;
  // `negatives`: config_.negatives draws, kNoRow where unusable); false when the event has
  // nothing to learn (a non-positive under softmax/bpr, no usable negative).
  bool add_event(Block& block, const Resolved& e, const uint32_t* history, uint32_t n_history,
                 const uint32_t* negatives) const;
  // Trains the block's events (see two_tower_block), counts them, empties the block.
  void train_block(Block& block, uint64_t& applied, uint64_t& skipped) noexcept;
  // The epochs of fit(): each event's input history is its user's positives before it in
  // time order (timestamps, else batch order), after those already remembered.
  void fit_sequences(const std::vector<Resolved>& events, const EventBatch& batch, uint32_t epochs, int threads,
                     uint64_t call);
  void train_sequence_epoch(std::vector<SequenceEvent>& events, const std::vector<int64_t>& bounds,
                            const std::vector<uint32_t>& sequence, uint64_t call, uint32_t epoch);
  // <encoding, item vector> for user parts and history rows (explain's leave-one-out).
  float encoded_score(const std::vector<Part>& user_parts, const uint32_t* history, uint32_t n, const float* item,
                      std::vector<float>& query) const;

  std::unique_ptr<DenseTower> tower_;      // shared by every user, Hogwild
  std::unique_ptr<HistoryStore> history_;  // each user's recent positives
  std::vector<float> recency_;             // recency^k, then 1 / sum of the first n (history_parts)
};

}  // namespace rtrec
