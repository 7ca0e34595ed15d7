// The two_tower family: the user encoding, its training (the steps themselves are in
// two_tower_step.cpp), its anonymous-history query and its explanations. The rest of the
// machinery (tables, seen sets, features, admission, eviction, top-K, snapshots) is Model's.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "model_family.hpp"
#include "rtrec/epoch.hpp"
#include "rtrec/parallel.hpp"

namespace rtrec {
using namespace model_detail;
namespace {

// Events a fit thread trains as one block (see two_tower_block): the tower's work becomes
// small matrix products and its shared weights are written once per block instead of per
// event, which keeps threads off each other's cache lines, at the cost of steps that see
// the embeddings as they were up to 32 events earlier (as Hogwild threads do anyway).
constexpr uint32_t kTowerBatch = 32;

}  // namespace

uint32_t Model::TwoTowerFamily::recent_items(uint32_t user, uint32_t* out) const noexcept {
  const uint32_t found = history_->recent(user, out);
  // An item evicted since it was remembered leaves a hole only once recycled; until then
  // its row is skipped here (and it may not be reused before no reader holds it).
  const uint32_t n_items = items_.size();
  const bool check_live = items_.has_erased();
  uint32_t kept = 0;
  for (uint32_t k = 0; k < found; ++k)
    if (out[k] < n_items && (!check_live || items_.is_live(out[k]))) out[kept++] = out[k];
  return kept;
}

void Model::TwoTowerFamily::history_parts(const uint32_t* items, uint32_t n, std::vector<Part>& out) const {
  if (n == 0) return;
  // Recency weights recency^k, normalised: a pool of one item is that item's input vector,
  // whatever the history length. recency_[k] = recency^k, recency_[H + n - 1] = 1 / the sum
  // of the first n (tables made once, at construction).
  const bool ada = items_.has_accumulators();
  const float scale = recency_[config_.history + n - 1];
  for (uint32_t k = 0; k < n; ++k) {
    const float w = recency_[k] * scale;
    const uint32_t r = items[k];
    // The item's bias is not part of the pool: it is listed only to fill the reference
    // (pool steps never move it).
    out.push_back(Part{RowRef{items_.input(r), ada ? &items_.input_accumulator(r) : nullptr, &items_.bias(r), nullptr}, w});
  }
}

float Model::TwoTowerFamily::user_query(uint32_t user, float* out) const noexcept {
  thread_local std::vector<Part> user_parts, pool_parts;
  thread_local std::vector<uint32_t> recent;
  thread_local std::vector<float> scratch;
  try {
    user_parts.clear();
    pool_parts.clear();
    recent.resize(config_.history);
    m_.parts_of(users_, user_features_, user, user_parts);
    history_parts(recent.data(), recent_items(user, recent.data()), pool_parts);
    const EncoderInput in{Parts{user_parts.data(), uint32_t(user_parts.size())},
                          Parts{pool_parts.data(), uint32_t(pool_parts.size())}};
    encode(*tower_, in, users_.stride(), out, scratch);
  } catch (...) {  // out of memory for the part lists: scored like an unknown user
    std::fill(out, out + users_.stride(), 0.0f);
  }
  return 0.0f;  // no user bias: it cannot change a user's ranking
}

// Events gathered for one two_tower_block call: their parts live in flat arrays (filled
// first, pointed into once complete, so no pointer dangles when an array grows).
struct Model::TwoTowerFamily::Block {
  struct Span {
    uint32_t user_begin, user_size, history_begin, history_size, candidates_begin, n_candidates, log_q_begin;
    float label, weight;
  };
  std::vector<Part> parts;
  std::vector<uint32_t> candidate_sizes;
  std::vector<uint32_t> candidate_rows;  // item rows whose scored vectors the step writes
  std::vector<float> log_q;
  std::vector<Span> spans;
  std::vector<Parts> candidates;
  std::vector<TwoTowerEvent> events;
  std::vector<float> scratch;

  void clear() noexcept {
    parts.clear();
    candidate_sizes.clear();
    candidate_rows.clear();
    log_q.clear();
    spans.clear();
  }
  uint32_t size() const noexcept { return static_cast<uint32_t>(spans.size()); }
};

bool Model::TwoTowerFamily::add_event(Block& b, const Resolved& e, const uint32_t* history, uint32_t n_history,
                                const uint32_t* negatives) const {
  const bool sampled = m_.sampled_loss();
  if (sampled && !(e.label > 0.0f)) return false;  // softmax and BPR learn from positives only
  uint32_t n_negatives = 0;
  if (sampled) {
    for (uint32_t s = 0; s < config_.negatives; ++s) n_negatives += negatives[s] != kNoRow;
    if (n_negatives == 0) return false;  // nothing to contrast the positive with
  }
  Block::Span span;
  span.label = e.label;
  span.weight = e.weight;
  span.user_begin = uint32_t(b.parts.size());
  m_.parts_of(users_, user_features_, e.user, b.parts);
  span.user_size = uint32_t(b.parts.size()) - span.user_begin;
  span.history_begin = uint32_t(b.parts.size());
  history_parts(history, n_history, b.parts);
  span.history_size = n_history;
  span.candidates_begin = uint32_t(b.candidate_sizes.size());
  span.log_q_begin = uint32_t(b.log_q.size());
  // Popularity-sampled negatives come from a pool of recent positives, so an item's
  // sampling probability is its share of positives; its count of events estimates that up
  // to a constant factor, which softmax ignores. Uniform sampling needs no correction.
  const bool correct = config_.loss == Loss::kSoftmax && config_.popularity_negatives();
  auto add_candidate = [&](uint32_t row) {
    const size_t before = b.parts.size();
    m_.parts_of(items_, item_features_, row, b.parts);
    b.candidate_sizes.push_back(uint32_t(b.parts.size() - before));
    b.candidate_rows.push_back(row);
    if (correct) b.log_q.push_back(std::log(float(std::max<uint32_t>(items_.update_count(row), 1))));
  };
  add_candidate(e.item);
  for (uint32_t s = 0; sampled && s < config_.negatives; ++s)
    if (negatives[s] != kNoRow) add_candidate(negatives[s]);
  span.n_candidates = 1 + n_negatives;
  b.spans.push_back(span);
  return true;
}

void Model::TwoTowerFamily::train_block(Block& b, uint64_t& applied, uint64_t& skipped) noexcept {
  const uint32_t n = b.size();
  if (n == 0) return;
  try {
    b.candidates.clear();
    b.events.clear();
    // Each event's candidates follow its user and history parts in `parts`, in order.
    for (const Block::Span& span : b.spans) {
      const Part* next = b.parts.data() + span.history_begin + span.history_size;
      for (uint32_t j = 0; j < span.n_candidates; ++j) {
        const uint32_t size = b.candidate_sizes[span.candidates_begin + j];
        b.candidates.push_back(Parts{next, size});
        next += size;
      }
    }
    size_t c = 0;
    const bool correct = config_.loss == Loss::kSoftmax && config_.popularity_negatives();
    for (const Block::Span& span : b.spans) {
      TwoTowerEvent ev;
      ev.in = EncoderInput{Parts{b.parts.data() + span.user_begin, span.user_size},
                           Parts{b.parts.data() + span.history_begin, span.history_size}};
      ev.candidates = b.candidates.data() + c;
      ev.log_q = correct ? b.log_q.data() + span.log_q_begin : nullptr;
      ev.m = span.n_candidates;
      ev.label = span.label;
      ev.weight = span.weight;
      b.events.push_back(ev);
      c += span.n_candidates;
    }
    const uint32_t done = two_tower_block(m_.step_config(), config_.loss, m_.offset(), *tower_, b.events.data(), n, b.scratch);
    applied += done;
    skipped += n - done;
    for (uint32_t row : b.candidate_rows) m_.sync_item(row);  // into the compact shadow
  } catch (...) {  // out of memory for the event lists: the block is skipped, like bad steps
    skipped += n;
  }
  b.clear();
}

void Model::TwoTowerFamily::fit_sequences(const std::vector<Resolved>& events, const EventBatch& batch, uint32_t epochs, int threads,
                          uint64_t call) {
  // 1. The learned events in time order (timestamps, ties and no timestamps: batch order),
  // grouped by user with that order kept.
  std::vector<uint32_t> order;
  order.reserve(events.size());
  for (uint32_t i = 0; i < events.size(); ++i)
    if (events[i].weight > 0.0f) order.push_back(i);  // admitted, weight > 0
  if (batch.timestamps != nullptr)
    std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return batch.timestamps[a] < batch.timestamps[b]; });
  std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return events[a].user < events[b].user; });

  // 2. Each user's sequence: the positives remembered before this fit, then the batch's
  // positives; an event's input history is the part of it before the event.
  const uint32_t capacity = config_.history;
  std::vector<uint32_t> sequence;
  std::vector<SequenceEvent> sequenced;
  sequenced.reserve(order.size());
  struct Span {
    uint32_t user, begin, end;  // the batch's new positives of a user
  };
  std::vector<Span> spans;
  std::vector<uint32_t> recent(capacity);
  for (size_t g = 0; g < order.size();) {
    const uint32_t user = events[order[g]].user;
    const size_t start = sequence.size();
    const uint32_t n_recent = recent_items(user, recent.data());
    for (uint32_t k = n_recent; k-- > 0;) sequence.push_back(recent[k]);  // oldest first
    const uint32_t fresh = static_cast<uint32_t>(sequence.size());
    for (; g < order.size() && events[order[g]].user == user; ++g) {
      const Resolved& r = events[order[g]];
      const size_t end = sequence.size();
      if (end >= uint64_t(UINT32_MAX)) throw std::length_error("fit: too many events in one call for two_tower");
      sequenced.push_back(SequenceEvent{r.user, r.item, r.label, r.weight, uint32_t(end),
                                        uint32_t(std::min<size_t>(capacity, end - start))});
      if (consumed(config_.loss, r.label, r.weight)) sequence.push_back(r.item);
    }
    if (sequence.size() > fresh) spans.push_back(Span{user, fresh, uint32_t(sequence.size())});
  }

  // 3. Hogwild epochs.
  if (m_.sampled_loss() && config_.popularity_negatives() && !sequenced.empty()) {
    SplitMix64 pool_rng(derive_seed(config_.seed, kSequenceStream, call, 0xf00d));
    m_.sampler_.refill(sequenced, pool_rng);
  }
  const int parts = static_cast<int>(std::min<int64_t>(threads, std::max<int64_t>(1, sequenced.size() / 1024)));
  const std::vector<int64_t> bounds = parts > 1 ? partition_by_item(sequenced, items_.size(), parts)
                                                : std::vector<int64_t>{0, static_cast<int64_t>(sequenced.size())};
  for (uint32_t epoch = 0; epoch < epochs; ++epoch) train_sequence_epoch(sequenced, bounds, sequence, call, epoch);

  // 4. The users remember the batch's positives, in order.
  for (const Span& span : spans)
    for (uint32_t k = std::max(span.begin, span.end > capacity ? span.end - capacity : 0); k < span.end; ++k)
      history_->push(span.user, sequence[k]);
}

void Model::TwoTowerFamily::train_sequence_epoch(std::vector<SequenceEvent>& events, const std::vector<int64_t>& bounds,
                                 const std::vector<uint32_t>& sequence, uint64_t call, uint32_t epoch) {
  const uint32_t n_neg = m_.sampled_loss() ? config_.negatives : 0;
  const uint32_t n_items = items_.size();
  const int parts = static_cast<int>(bounds.size()) - 1;
  uint64_t applied = 0, skipped = 0;
  ExceptionSlot failure;
#pragma omp parallel num_threads(parts) reduction(+ : applied, skipped)
  {
    const int t = thread_index();
    failure.run([&] {
      // Rows are visited in random order, so the loop waits on memory: the rows of the event
      // kAhead positions ahead (its user, item, negatives and history input rows) are
      // prefetched while this one computes, its negatives drawn early into a ring of slots.
      constexpr int64_t kAhead = 2, kSlots = kAhead + 1;
      std::vector<uint32_t> ring(size_t(kSlots) * std::max<uint32_t>(n_neg, 1));
      std::vector<uint32_t> history(config_.history);
      Block block;
      for (int part = t; part < parts; part += team_size()) {
        const int64_t begin = bounds[part], end = bounds[part + 1];
        SplitMix64 rng(derive_seed(config_.seed, kSequenceStream, call * 65536 + epoch, part));
        for (int64_t i = end - 1; i > begin; --i) std::swap(events[i], events[begin + rng.below(uint32_t(i - begin + 1))]);
        auto stage = [&](int64_t j) {
          const SequenceEvent& e = events[j];
          uint32_t* neg = ring.data() + (j % kSlots) * n_neg;
          if (n_neg > 0) m_.sampler_.draw(items_, e.item, n_items, rng, neg);
          users_.prefetch(e.user);
          items_.prefetch(e.item);
          for (uint32_t s = 0; s < n_neg; ++s)
            if (neg[s] != kNoRow) items_.prefetch(neg[s]);
          for (uint32_t k = 0; k < e.history_length; ++k) items_.prefetch_input(sequence[e.history_end - 1 - k]);
        };
        for (int64_t j = begin; j < std::min(end, begin + kAhead); ++j) stage(j);
        for (int64_t i = begin; i < end; ++i) {
          if (i + kAhead < end) stage(i + kAhead);  // fills another slot than event i's
          const SequenceEvent& e = events[i];
          for (uint32_t k = 0; k < e.history_length; ++k) history[k] = sequence[e.history_end - 1 - k];  // most recent first
          add_event(block, Resolved{e.user, e.item, e.label, e.weight}, history.data(), e.history_length,
                              ring.data() + (i % kSlots) * n_neg);
          if (block.size() == kTowerBatch) train_block(block, applied, skipped);
        }
      }
      train_block(block, applied, skipped);
    });
  }
  failure.rethrow();
  m_.updates_.fetch_add(applied, std::memory_order_relaxed);
  m_.skipped_.fetch_add(skipped, std::memory_order_relaxed);
}


Model::TwoTowerFamily::TwoTowerFamily(Model& model) : ModelFamily(model) {
  const ModelConfig& c = config_;
  // The tower reads [user vector ; pooled history] and writes a query of the item vectors' size.
  tower_ = std::make_unique<DenseTower>(2 * c.dim, c.tower, c.dim, c.optimizer == Optimizer::kAdagrad,
                                        derive_seed(c.seed, 0x7077));
  history_ = std::make_unique<HistoryStore>(c.history);
  recency_.resize(2 * size_t(c.history));
  double w = 1.0, total = 0.0;
  for (uint32_t k = 0; k < c.history; ++k, w *= c.recency) {
    recency_[k] = static_cast<float>(w);
    total += w;
    recency_[c.history + k] = static_cast<float>(1.0 / total);
  }
}

void Model::TwoTowerFamily::fit(std::vector<Resolved>& events, const EventBatch& batch, uint32_t epochs, int threads,
                                uint64_t call) {
  fit_sequences(events, batch, epochs, threads, call);  // orders the batch in time first
  events.erase(std::remove_if(events.begin(), events.end(), [](const Resolved& r) { return !(r.weight > 0.0f); }),
               events.end());
}

uint32_t Model::TwoTowerFamily::learn(const StepConfig&, const Resolved& r, uint64_t, uint64_t,
                                      const uint32_t* negatives, float*, uint32_t* recent, uint64_t& applied,
                                      uint64_t& skipped) {
  // The event's input is the history before it; then it joins the history, so the user's
  // next encoding (in any thread) already reflects it.
  const uint32_t n_recent = recent_items(r.user, recent);
  // Start fetching every row the step reads (random rows: cache misses) at once, so the
  // misses overlap instead of arriving one row after another.
  for (uint32_t k = 0; k < n_recent; ++k) items_.prefetch_input(recent[k]);
  if (m_.sampled_loss())
    for (uint32_t s = 0; s < config_.negatives; ++s)
      if (negatives[s] != kNoRow) items_.prefetch(negatives[s]);
  items_.prefetch(r.item);
  users_.prefetch(r.user);
  thread_local Block block;
  try {
    if (add_event(block, r, recent, n_recent, negatives)) train_block(block, applied, skipped);
  } catch (...) {  // out of memory for the event's lists: skipped, like a bad step
    block.clear();
    ++skipped;
  }
  if (consumed(config_.loss, r.label, r.weight)) history_->push(r.user, r.item);
  return n_recent;  // their input vectors took part in the step
}

void Model::TwoTowerFamily::history_query(const uint32_t* rows, const float* weights, uint32_t n, float* out) const {
  const uint32_t stride = users_.stride();
  // The encoding of a user with no ID row and no features: the tower and the history pool
  // only, over the last `history` items as a user's ring would hold them.
  thread_local std::vector<Part> pool;
  thread_local std::vector<float> scratch;
  pool.clear();
  const uint32_t used = std::min(n, config_.history);
  if (weights == nullptr) {
    history_parts(rows, used, pool);
  } else {
    double total = 0.0;
    for (uint32_t j = 0; j < used; ++j) total += weights[j];
    if (total <= 0.0) return;
    const bool ada = items_.has_accumulators();
    for (uint32_t j = 0; j < used; ++j)
      pool.push_back(Part{RowRef{items_.input(rows[j]), ada ? &items_.input_accumulator(rows[j]) : nullptr,
                                 &items_.bias(rows[j]), nullptr},
                          static_cast<float>(weights[j] / total)});
  }
  const EncoderInput in{Parts{nullptr, 0}, Parts{pool.data(), uint32_t(pool.size())}};
  encode(*tower_, in, stride, out, scratch);
}

void Model::TwoTowerFamily::forget(const std::vector<uint32_t>& users, const std::vector<uint8_t>& dead_items) {
  for (uint32_t u : users) history_->clear(u);
  if (!dead_items.empty()) history_->remove_items(dead_items);
}

float Model::TwoTowerFamily::encoded_score(const std::vector<Part>& user_parts, const uint32_t* history, uint32_t n,
                                           const float* item, std::vector<float>& query) const {
  thread_local std::vector<Part> pool_parts;
  thread_local std::vector<float> scratch;
  pool_parts.clear();
  history_parts(history, n, pool_parts);
  const EncoderInput in{Parts{user_parts.data(), uint32_t(user_parts.size())},
                        Parts{pool_parts.data(), uint32_t(pool_parts.size())}};
  encode(*tower_, in, users_.stride(), query.data(), scratch);
  return dot(query.data(), item, users_.stride());
}

void Model::TwoTowerFamily::explain(uint32_t user, uint32_t item, const float* item_vector, const float* query,
                                    std::vector<Reason>& reasons) const {
  const uint32_t stride = items_.stride();
  std::vector<float> other(stride);
  const FeatureList* item_list = item_features_.lists.get(item);
  const FeatureList* user_list = user_features_.lists.get(user);
  // two_tower: score contributions. Leave-one-out through the encoder for what the user
  // side is made of (each distinct history item, each user feature): the score minus the
  // score without it. An item feature adds its own term to the item vector, so its
  // contribution is that term's score, scale * (b_f + <c_u, v_f>).
  std::vector<uint32_t> recent(config_.history), without(config_.history);
  const uint32_t n_recent = recent_items(user, recent.data());
  std::vector<Part> user_parts;
  m_.parts_of(users_, user_features_, user, user_parts);
  const float full = encoded_score(user_parts, recent.data(), n_recent, item_vector, other);
  // History items are weighed with the user's ID row left out of the encoding: that row
  // learned from the same items (a user whose only event is A has an ID row that points
  // at A's neighbours), so with it in, removing A from the history would hide that A is
  // what the row learned from.
  std::vector<Part> history_only(user_parts);
  history_only[0].weight = 0.0f;
  const float from_history = encoded_score(history_only, recent.data(), n_recent, item_vector, other);
  std::vector<uint32_t> distinct(recent.begin(), recent.begin() + n_recent);
  std::sort(distinct.begin(), distinct.end());
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  for (uint32_t row : distinct) {
    uint32_t kept = 0;
    for (uint32_t k = 0; k < n_recent; ++k)
      if (recent[k] != row) without[kept++] = recent[k];
    reasons.push_back(m_.item_reason(row, from_history - encoded_score(history_only, without.data(), kept, item_vector, other)));
  }
  for (uint32_t k = 0; user_list != nullptr && k < user_list->size; ++k) {
    std::vector<Part> fewer(user_parts);
    fewer.erase(fewer.begin() + 1 + k);  // parts_of lists the ID row, then the features in order
    const float weight = full - encoded_score(fewer, recent.data(), n_recent, item_vector, other);
    reasons.push_back(Reason{true, 0, user_features_.table.name(user_list->rows[k]), weight});
  }
  for (uint32_t k = 0; item_list != nullptr && k < item_list->size; ++k) {
    const uint32_t f = item_list->rows[k];
    const EmbeddingTable& t = item_features_.table;
    const float weight = item_list->scale * (t.bias(f) + dot(query, t.vector(f), stride));
    reasons.push_back(Reason{true, 0, t.name(f), weight});
  }
}

}  // namespace rtrec
