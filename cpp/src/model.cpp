#include "rtrec/model.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "rtrec/epoch.hpp"
#include "rtrec/parallel.hpp"
#include "model_family.hpp"
#include "model_internal.hpp"
#include "shared_base.hpp"

namespace rtrec {
using namespace model_detail;
namespace {

// Below this many pairs a parallel region costs more than it saves.
constexpr size_t kParallelPredictMin = 16384;

}  // namespace

namespace {
TableOptions table_options(const ModelConfig& c, const char* side, uint64_t seed, bool inputs = false) {
  validate_config(c);  // before any table is sized from it
  TableOptions o;
  o.side = side;
  o.dim = c.dim;
  o.with_accumulators = c.optimizer == Optimizer::kAdagrad;
  // Every family's rows take row-wise AdaGrad (see two_tower_step and kernels.cpp): every
  // gradient a row gets in one step is a vector times a scalar (plus L2), so one
  // accumulator per row keeps the step sizes adaptive at the cost of one square root per
  // row instead of one per coordinate, and of one float of memory traffic instead of a
  // second row (profiled: the per-coordinate accumulators doubled the cache lines a BPR
  // step touches, and fit, bound by memory, took ~1.7x SGD's CPU time; row-wise: SGD's).
  o.row_accumulators = true;
  o.init_std = c.init_std;
  o.seed = seed;
  o.with_inputs = inputs;
  return o;
}
// Whether user rows start at zero is the family's choice (model_family.cpp).
TableOptions user_options(const ModelConfig& c) {
  TableOptions o = table_options(c, "user", c.seed);
  if (family_shape(c.family).zero_user_rows) o.init_std = 0.0f;
  return o;
}
// Feature rows start at zero (no random draw): adding features to an ID leaves its scores
// as they were until training moves them.
TableOptions feature_options(const ModelConfig& c, const char* side) {
  TableOptions o = table_options(c, side, 0);
  o.init_std = 0.0f;
  return o;
}
}  // namespace

Model::Model(const ModelConfig& config)
    : config_(config),
      users_(user_options(config)),
      items_(table_options(config, "item", derive_seed(config.seed, 0x17e5), family_shape(config.family).item_inputs)),
      user_features_(feature_options(config, "user feature")),
      item_features_(feature_options(config, "item feature")) {
  item_features_.lists.index_rows();  // tag filters find an item feature's items without a scan
  if (config.dedup_window > 0.0 || config.max_user_rate > 0.0)
    noise_guard_ = std::make_unique<NoiseGuard>(config.dedup_window, config.max_user_rate);
  if (config.adaptive_step) adaptive_ = std::make_unique<AdaptiveStep>();
  if (config.retrieval == Retrieval::kCompact) compact_ = std::make_unique<CompactRows>(config.dim, items_.stride());
  if (config.min_count > 1) {
    user_sketch_ = std::make_unique<CountMinSketch>();
    item_sketch_ = std::make_unique<CountMinSketch>();
  }
  family_ = ModelFamily::create(*this);
}

Model::~Model() = default;

uint32_t Model::admit(EmbeddingTable& table, CountMinSketch* sketch, uint64_t key, const std::string* name, double time) {
  // find_or_insert also checks a string ID against the name its hash is stored under, so
  // known IDs go through it too.
  const bool shadowed = compact_ != nullptr && &table == &items_;
  const bool known = (sketch != nullptr || shadowed) && table.find(key) != EmbeddingTable::kNotFound;
  if (sketch != nullptr && !known && sketch->add(key) < config_.min_count) return EmbeddingTable::kNotFound;
  const uint32_t row = table.find_or_insert(key, name, true, time);
  if (shadowed && !known) sync_item(row);  // a new item's random start, before any step
  return row;
}

void Model::validate(const EventBatch& e) const {
  if (e.users.size != e.size || e.items.size != e.size) throw std::invalid_argument("users and items differ in length");
  users_.check_kind(e.users.names, e.users.size);
  items_.check_kind(e.items.names, e.items.size);
  if (!sampled_loss() && e.labels == nullptr && e.size > 0)
    throw std::invalid_argument(std::string("labels are required for loss '") + loss_name(config_.loss) +
                                "' (ratings for squared and huber, clicks in [0, 1] for logistic)");
  for (size_t i = 0; i < e.size; ++i) {
    if (e.labels != nullptr) {
      const float y = e.labels[i];
      if (!std::isfinite(y)) throw std::invalid_argument("labels must be finite");
      if (config_.loss == Loss::kLogistic && (y < 0.0f || y > 1.0f))
        throw std::invalid_argument("labels must be in [0, 1] for the logistic loss");
    }
    if (e.weights != nullptr && !(e.weights[i] >= 0.0f && std::isfinite(e.weights[i])))
      throw std::invalid_argument("weights must be finite and >= 0");
    if (e.timestamps != nullptr && !std::isfinite(e.timestamps[i]))
      throw std::invalid_argument("timestamps must be finite");
  }
  users_.check_batch(e.users.keys, e.users.names, e.size);
  items_.check_batch(e.items.keys, e.items.names, e.size);
}

StepConfig Model::step_config() const noexcept {
  return StepConfig{users_.stride(), config_.learning_rate, config_.l2, config_.grad_clip,
                    config_.optimizer == Optimizer::kAdagrad, config_.dim, config_.huber_delta};
}

RowRef Model::user_row(uint32_t row) const noexcept {
  const bool ada = users_.has_accumulators();
  return RowRef{users_.vector(row), ada ? users_.accumulator(row) : nullptr, &users_.bias(row),
                ada ? &users_.bias_accumulator(row) : nullptr};
}

RowRef Model::item_row(uint32_t row) const noexcept {
  const bool ada = items_.has_accumulators();
  return RowRef{items_.vector(row), ada ? items_.accumulator(row) : nullptr, &items_.bias(row),
                ada ? &items_.bias_accumulator(row) : nullptr};
}

void Model::record_labels(double label_sum, double weight_sum) noexcept {
  if (sampled_loss() || weight_sum <= 0.0) return;
  // Plain load + store: concurrent writers may lose a contribution (a value race, never a
  // torn or structural one), which only nudges the running mean.
  const double sum = label_sum_.load(std::memory_order_relaxed) + label_sum;
  const double weight = weight_sum_.load(std::memory_order_relaxed) + weight_sum;
  label_sum_.store(sum, std::memory_order_relaxed);
  weight_sum_.store(weight, std::memory_order_relaxed);
  double mean = sum / weight;
  if (config_.loss == Loss::kLogistic) {
    mean = std::min(std::max(mean, 1e-4), 1.0 - 1e-4);
    mean = std::log(mean / (1.0 - mean));
  }
  global_bias_.store(static_cast<float>(mean), std::memory_order_relaxed);
}

void Model::record(const EventBatch& e, size_t i, double now, Resolved& r) {
  r.label = e.labels != nullptr ? e.labels[i] : 1.0f;
  r.weight = e.weights != nullptr ? e.weights[i] : 1.0f;
  const double t = e.timestamps != nullptr ? e.timestamps[i] : now;
  const uint32_t g = generation();
  users_.touch(r.user, t, g);
  items_.touch(r.item, t, g);
  if (consumed(config_.loss, r.label, r.weight)) seen_.add(r.user, r.item);
}

Model::Resolved Model::resolve(const EventBatch& e, size_t i, double now) {
  Resolved r;
  const double t = e.timestamps != nullptr ? e.timestamps[i] : now;
  r.user = admit(users_, user_sketch_.get(), e.users.keys[i], e.users.names != nullptr ? &e.users.names[i] : nullptr, t);
  r.item = admit(items_, item_sketch_.get(), e.items.keys[i], e.items.names != nullptr ? &e.items.names[i] : nullptr, t);
  if (r.user == kNoRow || r.item == kNoRow) {
    not_admitted_.fetch_add(1, std::memory_order_relaxed);
    return r;
  }
  record(e, i, now, r);
  return r;
}

void Model::fit(const EventBatch& e, uint32_t epochs, int num_threads) {
  {
    EpochGuard pin;  // rows found here are not recycled before the call ends
    fit_pinned(e, epochs, num_threads);
  }
  maintain();
}

void Model::fit_pinned(const EventBatch& e, uint32_t epochs, int num_threads) {
  if (e.size == 0) throw std::invalid_argument("fit needs at least one event");
  if (epochs == 0) throw std::invalid_argument("epochs must be >= 1");
  validate(e);
  const int threads = resolve_threads(num_threads);
  const uint64_t call = calls_.fetch_add(1, std::memory_order_relaxed);
  const double now = wall_clock();
  const int64_t n = static_cast<int64_t>(e.size);

  // 1. IDs -> rows (new IDs get rows), labels and weights, then metadata and seen pairs.
  // Two passes so that each can prefetch what it touches kPrefetchAhead events ahead: the
  // index slots in the first, row metadata and seen sets (whose rows it now knows) in the
  // second. Random-order lookups are otherwise one cache miss after another.
  std::vector<Resolved> events(e.size);
  ExceptionSlot failure;
  const std::string* user_names = e.users.names;
  const std::string* item_names = e.items.names;
  double label_sum = 0.0, weight_sum = 0.0;
  uint64_t not_admitted = 0;
#pragma omp parallel for num_threads(threads) schedule(static) reduction(+ : label_sum, weight_sum, not_admitted)
  for (int64_t i = 0; i < n; ++i) {
    if (failure.failed()) continue;
    if (i + kPrefetchAhead < n) {
      users_.prefetch_key(e.users.keys[i + kPrefetchAhead]);
      items_.prefetch_key(e.items.keys[i + kPrefetchAhead]);
    }
    failure.run([&] {
      const double t = e.timestamps != nullptr ? e.timestamps[i] : now;
      Resolved& r = events[i];
      r.user = admit(users_, user_sketch_.get(), e.users.keys[i], user_names != nullptr ? &user_names[i] : nullptr, t);
      r.item = admit(items_, item_sketch_.get(), e.items.keys[i], item_names != nullptr ? &item_names[i] : nullptr, t);
      r.label = e.labels != nullptr ? e.labels[i] : 1.0f;
      r.weight = e.weights != nullptr ? e.weights[i] : 1.0f;
      if (r.user == kNoRow || r.item == kNoRow) {  // an ID not admitted yet: not learned
        r.weight = 0.0f;
        ++not_admitted;
        return;
      }
      label_sum += double(r.weight) * r.label;
      weight_sum += r.weight;
    });
  }
  failure.rethrow();
  not_admitted_.fetch_add(not_admitted, std::memory_order_relaxed);
  // Metadata and seen pairs: every thread scans all events but writes only the rows it
  // owns (row % threads), so no two threads write one row's metadata line (popular items
  // would bounce between cores) or contend for one user's seen set, and each row's last
  // update is its last event's time in batch order. A pair already recorded (every pair of
  // a warm fit on known data) is found without the set's lock.
  const uint32_t touched_in = generation();
#pragma omp parallel num_threads(threads)
  {
    const uint32_t team = static_cast<uint32_t>(team_size()), me = static_cast<uint32_t>(thread_index());
    auto mine = [&](uint32_t row) { return row != kNoRow && row % team == me; };
    for (int64_t i = 0; i < n; ++i) {
      if (i + 2 * kPrefetchAhead < n && mine(events[i + 2 * kPrefetchAhead].user))
        seen_.prefetch_slot(events[i + 2 * kPrefetchAhead].user);
      if (i + kPrefetchAhead < n) {
        const Resolved& ahead = events[i + kPrefetchAhead];
        if (mine(ahead.user)) {
          users_.prefetch_metadata(ahead.user);
          seen_.prefetch(ahead.user);
        }
        if (mine(ahead.item)) items_.prefetch_metadata(ahead.item);
      }
      const Resolved& r = events[i];
      if (r.user == kNoRow || r.item == kNoRow) continue;
      const double t = e.timestamps != nullptr ? e.timestamps[i] : now;
      if (mine(r.item)) items_.touch(r.item, t, touched_in);
      if (!mine(r.user)) continue;
      users_.touch(r.user, t, touched_in);
      if (consumed(config_.loss, r.label, r.weight) && !seen_.contains(r.user, r.item)) {
        failure.run([&] { seen_.add(r.user, r.item); });
      }
    }
  }
  failure.rethrow();
  record_labels(label_sum, weight_sum);
  if (e.timestamps != nullptr) {  // the earliest first: rows waiting for the clock start there
    const auto range = std::minmax_element(e.timestamps, e.timestamps + e.size);
    advance_clock(*range.first);
    advance_clock(*range.second);
  }
  else advance_clock(now);

  // 2. Hogwild epochs: every thread steps on shared rows without locks (the family's fit).
  family_->fit(events, e, epochs, threads, call);  // leaves the events with weight > 0
  mark_trained(events, touched_in);
  changes_.fetch_add(1, std::memory_order_release);  // after mark_trained
}

void Model::mark_trained(const std::vector<Resolved>& events, uint32_t touched_in) {
  // Epochs change rows without marking them (a mark per row per step would cost a cache
  // miss each). The resolve pass marked every row of the batch with `touched_in`; if no
  // delta was cut since, those marks already put the whole fit into the next delta, and
  // only the BPR negatives (any item) need marking. The fence orders these stores before
  // the check, as in EmbeddingTable::mark. If a cut did happen, everything is re-marked
  // with the full protocol.
  // Feature rows are shared by many IDs and few: all of them are marked (full protocol).
  for (const FeatureSide* side : {&user_features_, &item_features_})
    if (side->lists.any())
      for (uint32_t f = 0, n = side->table.size(); f < n; ++f) side->table.mark(f, generation_);
  // Sampled negatives and (two_tower) history input vectors can be any item.
  const bool all_items = sampled_loss() || family_->steps_read_item_inputs();
  const uint32_t n_items = items_.size();
  if (all_items)
    for (uint32_t i = 0; i < n_items; ++i) items_.mark_relaxed(i, touched_in);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (generation_.load(std::memory_order_seq_cst) == touched_in) return;
  for (const Resolved& r : events) {
    users_.mark(r.user, generation_);
    items_.mark(r.item, generation_);
  }
  if (all_items)
    for (uint32_t i = 0; i < n_items; ++i) items_.mark(i, generation_);
}

void Model::update(const EventBatch& e) {
  {
    EpochGuard pin;
    update_pinned(e);
  }
  maintain();
}

void Model::update_pinned(const EventBatch& e) {
  validate(e);
  if (e.size == 0) return;
  // Each event's random draws come from its own stream, numbered by the events update has
  // seen: a batch of n events trains exactly like n single updates (a consumer may batch or
  // not and get the same model).
  const uint64_t first_event = update_events_.fetch_add(e.size, std::memory_order_relaxed);
  const double now = e.timestamps != nullptr ? 0.0 : wall_clock();
  const StepConfig step = step_config();
  float scratch[6 * 1024];
  std::vector<float> heap_scratch;
  float* buffer = scratch;
  if (scratch_floats(step.stride) > sizeof(scratch) / sizeof(float)) {
    heap_scratch.resize(scratch_floats(step.stride));
    buffer = heap_scratch.data();
  }
  // The per-event path: no heap allocation for the usual handful of negatives.
  uint32_t few_negatives[16];
  std::vector<uint32_t> many_negatives(config_.negatives > 16 ? config_.negatives : 0);
  uint32_t* negatives = config_.negatives > 16 ? many_negatives.data() : few_negatives;
  uint32_t recent[kMaxHistory];  // item rows whose input vectors the step changed (two_tower)
  uint64_t applied = 0, skipped = 0;
  for (size_t i = 0; i < e.size; ++i) {
    SplitMix64 rng(derive_seed(config_.seed, kUpdateStream, first_event + i));
    if (noise_guard_) {  // before anything is recorded: a dropped event leaves no trace but its count
      const double t = e.timestamps != nullptr ? e.timestamps[i] : now;
      const NoiseGuard::Verdict verdict =
          noise_guard_->check(e.users.keys[i], e.items.keys[i], e.labels != nullptr ? e.labels[i] : 1.0f, t);
      if (verdict != NoiseGuard::Verdict::kLearn) {
        (verdict == NoiseGuard::Verdict::kDuplicate ? deduplicated_ : rate_limited_)
            .fetch_add(1, std::memory_order_relaxed);
        advance_clock(t);
        continue;
      }
    }
    const Resolved r = resolve(e, i, now);
    advance_clock(e.timestamps != nullptr ? e.timestamps[i] : now);
    if (r.user == kNoRow || r.item == kNoRow) continue;  // not admitted yet
    record_labels(double(r.weight) * r.label, r.weight);
    if (!(r.weight > 0.0f)) {  // no step, but the metadata changed: mark like any change
      users_.mark(r.user, generation_);
      items_.mark(r.item, generation_);
      continue;
    }
    const bool sampled = sampled_loss();
    if (sampled && r.label > 0.0f && config_.popularity_negatives()) sampler_.add(r.item);
    if (sampled) sampler_.draw(items_, r.item, items_.size(), rng, negatives);
    if (compact_ != nullptr) {  // the shadow rows the step will end by writing
      compact_->prefetch(r.item);
      for (uint32_t s = 0; sampled && s < config_.negatives; ++s)
        if (negatives[s] != kNoRow) compact_->prefetch(negatives[s]);
    }
    const uint32_t n_recent =
        family_->learn(step, r, e.users.keys[i], e.items.keys[i], negatives, buffer, recent, applied, skipped);
    // Marked after the step (see EmbeddingTable::mark): the change goes into a delta.
    users_.mark(r.user, generation_);
    items_.mark(r.item, generation_);
    items_.mark_many(recent, n_recent, generation_);  // their input vectors
    if (sampled) items_.mark_many(negatives, config_.negatives, generation_);
    if (any_features()) {  // the feature rows that took part in the step changed too
      mark_features(user_features_, r.user);
      mark_features(item_features_, r.item);
      if (sampled)
        for (uint32_t s = 0; s < config_.negatives; ++s)
          if (negatives[s] != kNoRow) mark_features(item_features_, negatives[s]);
    }
  }
  updates_.fetch_add(applied, std::memory_order_relaxed);
  skipped_.fetch_add(skipped, std::memory_order_relaxed);
  changes_.fetch_add(1, std::memory_order_release);  // after every mark above
}

float Model::transform(float raw) const noexcept { return config_.loss == Loss::kLogistic ? sigmoid(raw) : raw; }

void Model::predict(const IdBatch& u, const IdBatch& it, float* out, int num_threads) const {
  if (u.size != it.size) throw std::invalid_argument("users and items differ in length");
  users_.check_kind(u.names, u.size);
  items_.check_kind(it.names, it.size);
  EpochGuard pin;  // worker threads only read rows this thread's pin protects
  const int64_t n = static_cast<int64_t>(u.size);
  const int threads = u.size >= kParallelPredictMin ? resolve_threads(num_threads) : 1;
  const float mu = offset();
  const uint32_t stride = users_.stride();
  const bool featured = any_features();
  // Query and item vectors (featured or two_tower rows): two per thread, allocated here
  // (nothing inside the parallel loop may throw).
  const bool plain = !featured && family_->query_is_user_vector();  // ID rows are the vectors
  std::vector<float> buffers(plain ? 0 : 2 * size_t(stride) * threads);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t ur = lookup(users_, u.keys[i], u.names != nullptr ? &u.names[i] : nullptr);
    const uint32_t ir = lookup(items_, it.keys[i], it.names != nullptr ? &it.names[i] : nullptr);
    float s = mu;
    if (plain) {
      if (ur != EmbeddingTable::kNotFound) s += users_.bias(ur);
      if (ir != EmbeddingTable::kNotFound) s += items_.bias(ir);
      if (ur != EmbeddingTable::kNotFound && ir != EmbeddingTable::kNotFound)
        s += dot(users_.vector(ur), items_.vector(ir), stride);
    } else {  // effective vectors: ID row + side features
      float* p = buffers.data() + 2 * size_t(stride) * thread_index();
      float* q = p + stride;
      if (ur != EmbeddingTable::kNotFound) s += user_query(ur, p);
      if (ir != EmbeddingTable::kNotFound) s += effective(items_, item_features_, ir, q);
      if (ur != EmbeddingTable::kNotFound && ir != EmbeddingTable::kNotFound) s += dot(p, q, stride);
    }
    out[i] = transform(s);
  }
}

ModelStats Model::stats() const noexcept {
  ModelStats s;
  s.n_users = users_.live_count();
  s.n_items = items_.live_count();
  s.updates = updates_.load(std::memory_order_relaxed);
  s.skipped_updates = skipped_.load(std::memory_order_relaxed);
  s.seen_pairs = seen_.pairs();
  s.memory_bytes = users_.memory_bytes() + items_.memory_bytes() + seen_.memory_bytes() +
                   user_features_.table.memory_bytes() + item_features_.table.memory_bytes();
  s.n_user_features = user_features_.table.live_count();
  s.n_item_features = item_features_.table.live_count();
  s.global_bias = offset();
  s.not_admitted = not_admitted_.load(std::memory_order_relaxed);
  s.evicted_users = evicted_users_.load(std::memory_order_relaxed);
  s.evicted_items = evicted_items_.load(std::memory_order_relaxed);
  s.deduplicated = deduplicated_.load(std::memory_order_relaxed);
  s.rate_limited = rate_limited_.load(std::memory_order_relaxed);
  s.clock = clock();
  s.hidden_items = hidden_.count();
  s.unknown_filter_ids = unknown_filter_ids_.load(std::memory_order_relaxed);
  s.memory_bytes += hidden_.memory_bytes() + item_features_.lists.index_bytes();
  s.item_names = item_names_.size();
  s.memory_bytes += item_names_.memory_bytes();
  s.memory_bytes += NoiseGuard::memory_bytes(config_.dedup_window, config_.max_user_rate);
  if (adaptive_) s.memory_bytes += AdaptiveStep::memory_bytes();
  s.memory_bytes += compact_bytes();
  if (user_sketch_) s.memory_bytes += 2 * CountMinSketch::memory_bytes();
  s.memory_bytes += family_->memory_bytes();
  return s;
}

}  // namespace rtrec
