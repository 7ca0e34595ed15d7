// The recommender model, learned online or in Hogwild epochs, served by top-K. Two families
// share every piece of machinery (tables, seen sets, features, admission, eviction, top-K,
// snapshots) and differ, behind ModelFamily (cpp/src/model_family.hpp), in how a user's
// query vector is made and how a step flows back:
//  * mf:        score(u, i) = mu + b_u + b_i + <p_u, q_i>, p_u the user's effective vector;
//  * two_tower: score(u, i) = mu + b_i + <c_u, q_i>, c_u = tower([p_u ; h_u]) + p_u + h_u,
//               h_u the pool of the input vectors of u's last `history` positives
//               (recency-weighted); items have an output vector (q_i, scored by top-K) and
//               an input vector (pooled). The skip connection makes a user with one event
//               score like the items near that event's item from the first step on.
// q_i is the item's effective vector (ID row plus side features) in both. All methods are
// safe to call concurrently: training threads and serving threads share one Model (see
// EmbeddingTable for the contract).
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <cstdint>
#include <string>
#include <vector>

#include "rtrec/compact_rows.hpp"
#include "rtrec/config.hpp"
#include "rtrec/count_sketch.hpp"
#include "rtrec/delta_lineage.hpp"
#include "rtrec/diversity.hpp"
#include "rtrec/embedding_table.hpp"
#include "rtrec/eviction_log.hpp"
#include "rtrec/feature_lists.hpp"
#include "rtrec/hidden_rows.hpp"
#include "rtrec/history_store.hpp"
#include "rtrec/item_names.hpp"
#include "rtrec/kernels.hpp"
#include "rtrec/negative_sampler.hpp"
#include "rtrec/noise_guard.hpp"
#include "rtrec/random.hpp"
#include "rtrec/retrieval.hpp"
#include "rtrec/seen_store.hpp"
#include "rtrec/topk.hpp"
#include "rtrec/tower.hpp"

namespace rtrec {

// IDs of one side (users or items) of a batch: `keys` always; `names` only for string IDs,
// in which case keys[i] == hash_string_id(names[i]).
struct IdBatch {
  const uint64_t* keys = nullptr;
  const std::string* names = nullptr;
  size_t size = 0;
};

struct EventBatch {
  IdBatch users;
  IdBatch items;
  const float* labels = nullptr;       // required for squared/logistic; optional for BPR
  const float* weights = nullptr;      // optional, >= 0
  const double* timestamps = nullptr;  // optional, seconds; else wall clock
  size_t size = 0;
};

struct ModelStats {
  uint64_t n_users, n_items, updates, skipped_updates, seen_pairs, memory_bytes, not_admitted;
  uint64_t n_user_features, n_item_features;
  uint64_t evicted_users, evicted_items;
  uint64_t deduplicated, rate_limited;  // update() events not learned (see ModelConfig)
  uint64_t hidden_items;                // see Model::hide
  uint64_t unknown_filter_ids;          // allow-list IDs that had no row, over all calls
  uint64_t item_names;                  // items with a display name (item_names.hpp)
  double global_bias;
  double clock;  // the newest event time seen (seconds)
};

// Where recommend() writes its results: item keys and scores, plus the names for string
// IDs (copied while the rows cannot be recycled). `names` may be null for integer IDs.
struct RecommendOutput {
  uint64_t* keys;
  std::string* names;
  float* scores;
};

class Model {
 public:
  static constexpr uint32_t kPoolSize = NegativeSampler::kPoolSize;  // popularity-negative pool
  static constexpr uint32_t kMaxSourcePosition = 1024;  // bytes of a source position

  explicit Model(const ModelConfig& config);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelConfig& config() const noexcept { return config_; }
  const EmbeddingTable& users() const noexcept { return users_; }
  const EmbeddingTable& items() const noexcept { return items_; }

  // Hogwild epochs over the batch (shuffled each epoch), continuing from the current state.
  void fit(const EventBatch& events, uint32_t epochs, int num_threads);
  // The real-time path: events applied one after another, in order, on the calling thread.
  void update(const EventBatch& events);

  // Predictions in label units: rating (squared), click probability (logistic), raw
  // preference score (BPR). Unknown IDs contribute zero vectors and biases.
  void predict(const IdBatch& users, const IdBatch& items, float* out, int num_threads) const;

  // ---- retrieval (model_retrieval.cpp). Every call ranks the items that pass `filter` (see
  // CandidateFilter) and are not hidden, through one pipeline; what differs is how the query
  // vector is made. Results are written to `out` (at most k), best first, scores in
  // predict()'s units; the return value is how many. `diversity` (lambda, see diversity.hpp):
  // 0 is the exact top-k; above 0 the k are chosen from the diversity_pool(k) best by MMR and
  // come in pick order. Bad input (k 0, lambda outside [0, 1], a list over its limit, IDs of
  // the wrong kind) throws std::invalid_argument / IdKindError; a tag no item has ever had
  // throws std::out_of_range naming it. `info` (optional) receives the call's counts.

  // Top-k for one user key (an unknown user ranks by item bias).
  uint32_t recommend(uint64_t user_key, const std::string* user_name, uint32_t k, bool exclude_seen, int num_threads,
                     const RecommendOutput& out, float diversity = 0.0f, const CandidateFilter& filter = {},
                     RetrievalInfo* info = nullptr) const;
  // Many users at once (blocks of users share each pass over the items, blocks spread over
  // threads), one filter for all; entries [i*k, i*k + counts[i]) of the outputs belong to user i.
  void recommend_batch(const IdBatch& users, uint32_t k, bool exclude_seen, int num_threads,
                       const RecommendOutput& out, uint32_t* counts, float diversity = 0.0f,
                       const CandidateFilter& filter = {}, RetrievalInfo* info = nullptr) const;
  // Top-k for a visitor known only by `history` (items, oldest first; unknown ones ignored and
  // counted; `weights` optional, >= 0, one per item). Creates no row and changes nothing.
  // The family encodes the history as it would a user's (see history_query); the history's
  // own items are excluded when `exclude_history`.
  uint32_t recommend_for_history(const IdBatch& history, const float* weights, uint32_t k, bool exclude_history,
                                 int num_threads, const RecommendOutput& out, float diversity = 0.0f,
                                 const CandidateFilter& filter = {}, RetrievalInfo* info = nullptr) const;
  // The k items most similar to `item` (never itself): those the model ranks first for a
  // visitor whose history is that item alone (history_query of one item), scores in
  // predict()'s units. Throws std::out_of_range naming an unknown item. The batch form: one
  // list per item, as recommend_batch.
  uint32_t similar_items(uint64_t item_key, const std::string* item_name, uint32_t k, int num_threads,
                         const RecommendOutput& out, const CandidateFilter& filter = {},
                         RetrievalInfo* info = nullptr) const;
  void similar_items_batch(const IdBatch& items, uint32_t k, int num_threads, const RecommendOutput& out,
                           uint32_t* counts, const CandidateFilter& filter = {}, RetrievalInfo* info = nullptr) const;
  // Whether the user has a row (a recommendation for an unknown user is the popular list).
  bool knows_user(uint64_t user_key, const std::string* user_name) const;

  // Hidden items: never returned by a retrieval call, still learned from and scored by
  // predict. hide(ids, true) hides, hide(ids, false) shows again; unknown IDs change nothing
  // and are counted. An evicted item is no longer hidden. Saved in snapshots and carried by
  // deltas.
  struct HideResult {
    uint64_t changed, unknown;
  };
  HideResult hide(const IdBatch& items, bool hidden);
  void hidden_flags(const IdBatch& items, uint8_t* out) const;  // 1 where hidden
  uint64_t hidden_count() const noexcept { return hidden_.count(); }
  // Bytes of the compact shadow (retrieval="compact"; 0 in exact mode).
  uint64_t compact_bytes() const noexcept { return compact_ != nullptr ? compact_->memory_bytes() : 0; }

  // Why the model scores `item` for `user`: up to n reasons, strongest first (model_explain.cpp).
  // mf: the user's consumed items by cosine similarity to the item, and the features of
  // both (item features by cosine to the user's vector, user features by cosine to the
  // item's), all cosines in the model's space. two_tower: score contributions by leave-one-
  // out: for each distinct item of the user's encoded history, how much the score of the
  // history's encoding (the user's ID row left out: it learned from those same items) drops
  // without it; for each user feature, how much the full score drops without it; for each
  // item feature, its term of the score. Throws std::out_of_range naming an unknown user or item, std::invalid_argument
  // for n == 0.
  struct Reason {
    bool feature;      // a feature (name) or one of the user's items (key, name for string IDs)
    uint64_t key;
    std::string name;
    float weight;
  };
  std::vector<Reason> explain(uint64_t user_key, const std::string* user_name, uint64_t item_key,
                              const std::string* item_name, uint32_t n) const;

  // Side features: replaces the features of each listed ID (creating the ID's row if
  // needed, so a new item is recommendable before its first event); an empty list removes
  // them. Features are rows of a per-side feature table, keyed by name, starting at zero;
  // the user/item vector used everywhere is the ID row plus the feature rows times
  // 1/sqrt(n), and the same for biases. The whole batch is checked before anything changes.
  void set_features(bool items, const IdBatch& ids, const std::vector<std::vector<std::string>>& features);
  // The feature names of one ID (empty if it has none or is unknown).
  std::vector<std::string> features_of(bool items, uint64_t key, const std::string* name) const;

  // Display names of items (item_names.hpp, item_names.cpp): set, replaced or (an empty
  // name) removed per item key; an item needs no row to have a name. Kept in snapshots and,
  // when set since the last delta, in deltas. The batch is checked whole first (ID kind,
  // lengths); names() answers {false, ""} where an item has none.
  void set_item_names(const IdBatch& ids, const std::vector<std::string>& names);
  std::vector<std::pair<bool, std::string>> item_names(const IdBatch& ids) const;
  const ItemNames& item_name_store() const noexcept { return item_names_; }
  ItemNames& item_name_store() noexcept { return item_names_; }

  // Vectors for other systems (an ANN index, say): for items their effective vector and
  // bias (what top-K scores against); for users their query vector and bias (mf: the
  // effective vector; two_tower: the encoding of their current history, bias 0). So for a
  // user u, ranking items by <user_vector(u), item_vector(i)> + item_bias(i) is exactly
  // recommend(u)'s order. `ids` null: every live row. Throws std::out_of_range (naming
  // the ID) when a listed ID is unknown.
  struct Vectors {
    std::vector<uint64_t> keys;
    std::vector<std::string> names;  // string IDs only
    std::vector<float> values;       // rows x dim
    std::vector<float> biases;
  };
  Vectors export_vectors(bool items, const IdBatch* ids) const;

  // Evicts every row (both tables) last updated before `cutoff` (seconds, the clock of
  // event timestamps); returns how many. Safe while other threads read and train.
  uint64_t evict_before(double cutoff);
  // The newest event time seen: the model's clock for expiry.
  double clock() const noexcept { return clock_.load(std::memory_order_relaxed); }

  ModelStats stats() const noexcept;

  // ---- shared rows (model_shared.cpp): what every trainer of a user-partitioned model learns
  // from its own events and merges from the others' (items: vector, bias, accumulators, input
  // vector; item features; the tower's parameters with their accumulators; the label sums).
  // Each row is one flat record of record_width() floats; `items` and `features` hold the
  // records of item_keys / feature_names in order. An increment has the same form: what a
  // trainer's own learning added since a base. Adding increments is how every copy ends the
  // same whatever the order they arrive in (AdaGrad accumulators are added too, so a row's
  // step size shrinks with the gradients of every partition, as one trainer's would).
  struct SharedRows {
    std::vector<uint64_t> item_keys;
    std::vector<std::string> item_names;  // string item IDs only
    std::vector<float> items;
    std::vector<std::string> feature_names;
    std::vector<float> features;
    std::vector<float> tower;  // two_tower only
    double label_sum = 0.0, weight_sum = 0.0;
  };
  // The shared rows as they are now (Hogwild-consistent, like a snapshot).
  SharedRows shared_rows() const;
  // What the shared rows gained since `base` (a shared_rows() of this model): rows that are
  // not in `base` count from their random start, which every trainer of one seed shares;
  // rows that did not move are left out.
  SharedRows shared_increment(const SharedRows& base) const;
  // Adds an increment: unknown items and features get their rows (random start) first. The
  // rows are marked for the next delta. Throws std::invalid_argument (changing nothing) when
  // its shape does not fit this model.
  void add_shared(const SharedRows& increment);
  uint32_t shared_record_width(bool features) const noexcept;
  // The base a partitioned trainer takes its own increments against, kept here: reset to the
  // shared rows as they are (after a restore), taken (the increment since the base, and the
  // base moves to now), and moved by what peers add (add_shared adds to the base too, once a
  // base exists: a peer's increment is not this trainer's own learning) or by an increment
  // this trainer published before a crash (add_to_shared_base). Call them between the
  // learning calls of the one thread that learns: an event learned while an increment is
  // taken would be in neither the increment nor the base.
  void reset_shared_base();
  SharedRows take_shared_increment();
  void add_to_shared_base(const SharedRows& increment);

  // Persistence (model_persistence.hpp): the state a snapshot or delta holds is read through
  // StateAccess, written back through Import, and cut into lineage steps by SnapshotCut and
  // DeltaCut. The file format (snapshot.hpp) uses only these and the public views above; the
  // model knows nothing of the format.
  class StateAccess;
  class SnapshotCut;
  class DeltaCut;
  class Import;

 private:
  struct Resolved {
    uint32_t user, item;
    float label, weight;
  };

  void validate(const EventBatch& events) const;
  void fit_pinned(const EventBatch& events, uint32_t epochs, int num_threads);
  void set_features_pinned(bool items, const IdBatch& ids, const std::vector<std::vector<std::string>>& features);
  void update_pinned(const EventBatch& events);
  // Losses that learn from positives against sampled negative items.
  bool sampled_loss() const noexcept { return samples_negatives(config_.loss); }
  void record_labels(double label_sum, double weight_sum) noexcept;
  float offset() const noexcept { return global_bias_.load(std::memory_order_relaxed); }
  StepConfig step_config() const noexcept;
  RowRef user_row(uint32_t row) const noexcept;
  RowRef item_row(uint32_t row) const noexcept;
  // ---- mf's steps (model_mf.cpp, model_warp.cpp, model_features.cpp), called by MfFamily.
  // One event's gradient step(s), `negatives` drawn beforehand (BPR); adds to `applied` /
  // `skipped` (BPR: one per negative).
  void train_one(const StepConfig& step, const Resolved& e, const uint32_t* negatives, float* scratch,
                 uint64_t& applied, uint64_t& skipped) noexcept;
  // train_one for warp (model_warp.cpp): the first of `negatives` that scores within the
  // margin of the positive gets a BPR step scaled by the rank estimate.
  void train_warp(const StepConfig& step, const Resolved& e, const uint32_t* negatives, float* scratch,
                  uint64_t& applied, uint64_t& skipped) noexcept;
  // train_one for events whose rows have side features (the composite kernels), against the
  // first `n_negatives` of `negatives` (bpr, warp).
  void train_composite(const StepConfig& step, const Resolved& e, const uint32_t* negatives, uint32_t n_negatives,
                       uint64_t& applied, uint64_t& skipped) noexcept;
  // One Hogwild epoch: part p of `bounds` is shuffled and trained by one thread.
  void train_epoch(std::vector<Resolved>& events, const std::vector<int64_t>& bounds, uint64_t call, uint32_t epoch,
                   std::vector<float>& scratch, std::vector<uint32_t>& negatives);
  // The row of an ID, creating it if the ID is (now) admitted; kNotFound while it is not.
  // A new row starts with last-update time `time`.
  uint32_t admit(EmbeddingTable& table, CountMinSketch* sketch, uint64_t key, const std::string* name, double time);
  void advance_clock(double time) noexcept;
  void stamp_untouched(double time) noexcept;
  // The user's query vector (stride floats into `out`): mf its effective vector, two_tower
  // its encoding. Returns the user-side bias (none in two_tower).
  float user_query(uint32_t user, float* out) const noexcept;
  // Re-orders the first min(k, found) entries of `pool` (found candidates, best first) to
  // the MMR picks for `diversity` (model_diversity.cpp); returns how many.
  uint32_t diversify(ScoredRow* pool, uint32_t found, uint32_t k, float diversity, std::vector<float>& vectors,
                     std::vector<float>& scratch) const;
  // `now` (shared rows read from this model) minus `base`, rows that did not move left out.
  SharedRows increment_between(SharedRows now, const SharedRows& base) const;
  // An explain() reason naming an item row (its key, and its name for string IDs).
  Reason item_reason(uint32_t row, float weight) const;
  // Copies k results' keys, names and scores (in predict's units) into `out` at `at`.
  void emit(const ScoredRow* best, uint32_t found, float base, const RecommendOutput& out, size_t at) const;

  // ---- eviction (see evict_before). Rows leave the index at once, then wait until no
  // reader can hold them (EpochDomain) before their seen pairs are dropped and they are
  // reused. Maintenance (the automatic ttl / max_rows checks and the recycling) runs after
  // each fit/update, on one thread at a time.
  struct Pending {
    uint64_t tag;  // EpochDomain tag: recyclable once no reader is pinned at or before it
    std::vector<uint32_t> users, items;
  };
  // Erases these rows (maintenance_mutex_ held); returns how many were live. `log`: record
  // the keys for the next delta.
  uint64_t evict_rows(const std::vector<uint32_t>& users, const std::vector<uint32_t>& items, bool log = true);
  void recycle();  // maintenance_mutex_ held: reuses the pending rows that are safe now
  void log_evictions(const Pending& p);  // eviction_log_.mutex() held
  // Evicts the rows of these keys (a replica applying a delta); unknown keys are skipped.
  void evict_keys(const std::vector<uint64_t>& users, const std::vector<uint64_t>& items);
  // Evicts every row whose key is not listed (a delta that lists the trainer's live keys).
  void keep_only(const std::vector<uint64_t>& users, const std::vector<uint64_t>& items);
  void maintain();
  // Live rows of `table` last updated before `cutoff`.
  std::vector<uint32_t> rows_before(const EmbeddingTable& table, double cutoff) const;
  // The `count` least recently updated live rows of `table`.
  std::vector<uint32_t> oldest_rows(const EmbeddingTable& table, uint64_t count) const;
  // IDs -> rows (new IDs get rows), then record().
  Resolved resolve(const EventBatch& events, size_t i, double now);
  // Fills label and weight of event i, touches its rows' metadata, records a positive.
  void record(const EventBatch& events, size_t i, double now, Resolved& r);
  void mark_trained(const std::vector<Resolved>& events, uint32_t touched_in);
  float transform(float raw_score) const noexcept;
  // Fills `query` (stride floats) and the sorted `excluded` rows for a user row (kNotFound:
  // zeros, nothing excluded); returns the constant added to every item's score.
  float prepare_query(uint32_t user, bool exclude_seen, float* query, std::vector<uint32_t>& excluded) const;
  // ---- the retrieval pipeline (model_retrieval.cpp).
  // A call's filter resolved to rows once: `restricted` (an allow-list or tags given) means
  // only `rows` may be returned; `denied` rows never (both ascending).
  struct Candidates {
    bool restricted = false;
    std::vector<uint32_t> rows, denied;
  };
  Candidates resolve_filter(const CandidateFilter& filter, RetrievalInfo* info) const;
  // prepare_query for a retrieval call: with a candidate list, the seen rows among it only.
  float prepare_user_query(uint32_t user, bool exclude_seen, const Candidates& c, float* query,
                           std::vector<uint32_t>& excluded) const;
  // Ranks one query under the call's candidates: `excluded` (ascending, the query's own) is
  // merged with the denied rows; `wanted` results (k, or the diversity pool) into `best`,
  // re-ordered by MMR when diversifying. Returns how many.
  uint32_t retrieve(const float* query, std::vector<uint32_t>& excluded, const Candidates& c, const ScanRules& rules,
                    uint32_t k, float diversity, int threads, std::vector<ScoredRow>& best) const;
  ScanRules scan_rules(const float* feature_scores, uint32_t n_features) const noexcept;
  // The query vector of an anonymous history (item rows, most recent first; weights null:
  // the family's own weighting): two_tower encodes it without a user ID row, mf sums the
  // items' vectors scaled by 1/sqrt(total weight) (SVD++'s implicit-feedback term; on the
  // MovieLens replay as good as the mean: benchmarks/bench_retrieval_quality.py).
  void history_query(const uint32_t* rows, const float* weights, uint32_t n, float* out) const;
  // retrieval="compact": the int8 shadow of the items' scored vectors (null in exact mode).
  // Every write of an item's float row is followed by sync_item (or clear at recycling).
  std::unique_ptr<CompactRows> compact_;
  void sync_item(uint32_t row) const noexcept {
    if (compact_ == nullptr || row == kNoCompactRow) return;
    try {
      compact_->write(row, items_.vector(row));
    } catch (...) {  // out of memory for a new chunk: that chunk's rows are scanned exactly
    }
  }
  static constexpr uint32_t kNoCompactRow = EmbeddingTable::kNotFound;

  // ---- the family (model_family.hpp): what differs between mf and two_tower, behind one
  // interface. The shared machinery above and below calls through family_.
  class ModelFamily;
  class MfFamily;
  class TwoTowerFamily;
  std::unique_ptr<ModelFamily> family_;  // made in the constructor, never replaced

  // Side features of one table's IDs.
  struct FeatureSide {
    explicit FeatureSide(const TableOptions& options) : table(options) {}
    EmbeddingTable table;  // feature name -> row (string keys), same dim and optimizer
    FeatureLists lists;    // ID row -> rows of its features
  };
  // The effective vector of an ID row (ID row + weighted feature rows) into `out`
  // (stride floats); returns its effective bias.
  float effective(const EmbeddingTable& ids, const FeatureSide& side, uint32_t row, float* out) const noexcept;
  // The parts of an ID row's effective vector, appended to `out`.
  void parts_of(const EmbeddingTable& ids, const FeatureSide& side, uint32_t row, std::vector<Part>& out) const;
  bool any_features() const noexcept { return user_features_.lists.any() || item_features_.lists.any(); }
  // Marks the feature rows of an event's rows after a step (see mark()).
  void mark_features(const FeatureSide& side, uint32_t row) noexcept;
  // Per-feature scores b_f + <query, v_f> of the item features, for top-K.
  void feature_scores(const float* query, std::vector<float>& out) const;

  const ModelConfig config_;
  EmbeddingTable users_;
  EmbeddingTable items_;
  SeenStore seen_;
  // Hidden item rows (see hide). hidden_mutex_ orders hide against eviction: a row's flag is
  // set only while its key still finds it, and cleared when it is evicted.
  HiddenRows hidden_;
  mutable std::mutex hidden_mutex_;
  mutable std::atomic<uint64_t> hidden_version_{0};  // bumped by each change: deltas carry the set
  mutable std::atomic<uint64_t> unknown_filter_ids_{0};  // allow-list IDs with no row, over all calls
  FeatureSide user_features_, item_features_;
  std::mutex features_mutex_;  // one set_features at a time
  ItemNames item_names_;       // display names; dropped with evicted items

  // Global bias: the running weighted mean of labels (squared) or its logit (logistic); kept
  // out of SGD so that Hogwild threads do not all write one cache line per event.
  std::atomic<double> label_sum_{0.0};
  std::atomic<double> weight_sum_{0.0};
  std::atomic<float> global_bias_{0.0f};

  std::atomic<uint64_t> updates_{0};
  std::atomic<uint64_t> skipped_{0};
  std::atomic<uint64_t> calls_{0};          // seeds each fit's random streams
  std::atomic<uint64_t> update_events_{0};  // events seen by update: seeds each one's stream
  std::atomic<uint64_t> not_admitted_{0};
  std::atomic<uint64_t> deduplicated_{0}, rate_limited_{0};
  std::unique_ptr<NoiseGuard> noise_guard_;  // when dedup_window or max_user_rate is set
  std::unique_ptr<AdaptiveStep> adaptive_;   // when adaptive_step is set
  // The step of a (non-BPR, mf) event scaled by AdaptiveStep from its residual now.
  StepConfig adaptive_step(const StepConfig& step, const Resolved& r, uint64_t user_key, uint64_t item_key,
                           float* scratch) const noexcept;
  std::atomic<double> clock_{0.0};
  std::atomic<bool> unstamped_{false};  // set_features made rows before the clock started
  std::atomic<uint64_t> evicted_users_{0}, evicted_items_{0};
  std::mutex maintenance_mutex_;
  std::vector<Pending> pending_;           // under maintenance_mutex_
  std::atomic<bool> has_pending_{false};
  std::atomic<double> last_ttl_sweep_{0.0};  // clock at the last ttl sweep
  // Keys evicted since the last delta, for replicas to drop (a save, const, takes them).
  mutable EvictionLog eviction_log_;
  std::unique_ptr<CountMinSketch> user_sketch_, item_sketch_;  // only when min_count > 1

  // Persistence. Every change marks its rows with the current generation; a delta cuts a
  // new generation and holds the rows marked since the previous cut. The deltas of one
  // model form a lineage: numbered 1, 2, ... and each applicable to any copy at the
  // previous number, whether that copy followed every delta or loaded a full snapshot
  // taken since (a snapshot records the number of the last delta before it).
  mutable std::atomic<uint32_t> generation_{1};  // a save (const) cuts a new generation
  // Counts calls that changed rows, bumped after their rows are marked: a publisher that
  // reads it before cutting a delta and sees no change since its last delta has nothing to
  // write (one relaxed add per call, not per row).
  std::atomic<uint64_t> changes_{0};
  mutable DeltaLineage lineage_;  // a save (const) cuts the next delta

  // Negatives of the sampled losses, and the pool of recent positives' items they may come from.
  NegativeSampler sampler_{config_.negatives, config_.popularity_negatives()};

  // The base of take_shared_increment (null until reset_shared_base), its key -> record
  // index, and the lock that orders its users. Last: partitioned training only, off the
  // cache lines the per-event path reads.
  struct SharedBase;
  std::unique_ptr<SharedBase> shared_base_;
  std::mutex shared_base_mutex_;

 public:
  uint32_t generation() const noexcept { return generation_.load(std::memory_order_relaxed); }
  uint64_t change_count() const noexcept { return changes_.load(std::memory_order_acquire); }
  uint64_t lineage() const {
    std::lock_guard<std::mutex> lock(lineage_.mutex);
    return lineage_.at.lineage;
  }
  uint64_t sequence() const {
    std::lock_guard<std::mutex> lock(lineage_.mutex);
    return lineage_.at.sequence;
  }
  // Where the model's input stream stood when it last changed, as the feeder records it (a
  // stream entry ID, an offset): saved in every snapshot and delta and restored with them,
  // so a consumer that restarts from a file knows which events the file already holds.
  // The feeder sets it after the update that learned up to there, from the thread that
  // also saves, so a file never holds a position its rows do not.
  void set_source_position(const std::string& position) {
    if (position.size() > kMaxSourcePosition)
      throw std::invalid_argument("a source position is at most " + std::to_string(kMaxSourcePosition) + " bytes");
    std::lock_guard<std::mutex> lock(lineage_.mutex);
    lineage_.source_position = position;
  }
  std::string source_position() const {
    std::lock_guard<std::mutex> lock(lineage_.mutex);
    return lineage_.source_position;
  }
};

}  // namespace rtrec
