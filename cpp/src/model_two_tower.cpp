// Model: the two_tower family's user encoding and training (the rest of the machinery —
// tables, seen sets, features, admission, eviction, top-K, snapshots — is shared with mf).
#include <algorithm>
#include <cmath>
#include <numeric>

#include "model_internal.hpp"
#include "rtrec/epoch.hpp"
#include "rtrec/model.hpp"
#include "rtrec/parallel.hpp"

namespace rtrec {
using namespace model_detail;
namespace {

constexpr uint64_t kSequenceStream = 5;  // shuffles and negatives of two_tower fit epochs
// Events a fit thread trains as one block (see two_tower_block): the tower's work becomes
// small matrix products and its shared weights are written once per block instead of per
// event, which keeps threads off each other's cache lines, at the cost of steps that see
// the embeddings as they were up to 32 events earlier (as Hogwild threads do anyway).
constexpr uint32_t kTowerBatch = 32;

}  // namespace

uint32_t Model::recent_items(uint32_t user, uint32_t* out) const noexcept {
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

void Model::history_parts(const uint32_t* items, uint32_t n, std::vector<Part>& out) const {
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

float Model::user_query(uint32_t user, float* out) const noexcept {
  if (!two_tower()) return effective(users_, user_features_, user, out);
  thread_local std::vector<Part> user_parts, pool_parts;
  thread_local std::vector<uint32_t> recent;
  thread_local std::vector<float> scratch;
  try {
    user_parts.clear();
    pool_parts.clear();
    recent.resize(config_.history);
    parts_of(users_, user_features_, user, user_parts);
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
struct Model::TwoTowerBlock {
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

bool Model::add_two_tower_event(TwoTowerBlock& b, const Resolved& e, const uint32_t* history, uint32_t n_history,
                                const uint32_t* negatives) const {
  const bool sampled = sampled_loss();
  if (sampled && !(e.label > 0.0f)) return false;  // softmax and BPR learn from positives only
  uint32_t n_negatives = 0;
  if (sampled) {
    for (uint32_t s = 0; s < config_.negatives; ++s) n_negatives += negatives[s] != kNoRow;
    if (n_negatives == 0) return false;  // nothing to contrast the positive with
  }
  TwoTowerBlock::Span span;
  span.label = e.label;
  span.weight = e.weight;
  span.user_begin = uint32_t(b.parts.size());
  parts_of(users_, user_features_, e.user, b.parts);
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
    parts_of(items_, item_features_, row, b.parts);
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

void Model::train_two_tower_block(TwoTowerBlock& b, uint64_t& applied, uint64_t& skipped) noexcept {
  const uint32_t n = b.size();
  if (n == 0) return;
  try {
    b.candidates.clear();
    b.events.clear();
    // Each event's candidates follow its user and history parts in `parts`, in order.
    for (const TwoTowerBlock::Span& span : b.spans) {
      const Part* next = b.parts.data() + span.history_begin + span.history_size;
      for (uint32_t j = 0; j < span.n_candidates; ++j) {
        const uint32_t size = b.candidate_sizes[span.candidates_begin + j];
        b.candidates.push_back(Parts{next, size});
        next += size;
      }
    }
    size_t c = 0;
    const bool correct = config_.loss == Loss::kSoftmax && config_.popularity_negatives();
    for (const TwoTowerBlock::Span& span : b.spans) {
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
    const uint32_t done = two_tower_block(step_config(), config_.loss, offset(), *tower_, b.events.data(), n, b.scratch);
    applied += done;
    skipped += n - done;
    for (uint32_t row : b.candidate_rows) sync_item(row);  // into the compact shadow
  } catch (...) {  // out of memory for the event lists: the block is skipped, like bad steps
    skipped += n;
  }
  b.clear();
}

void Model::train_two_tower(const Resolved& e, const uint32_t* history, uint32_t n_history, const uint32_t* negatives,
                            uint64_t& applied, uint64_t& skipped) noexcept {
  thread_local TwoTowerBlock block;
  try {
    if (!add_two_tower_event(block, e, history, n_history, negatives)) return;
  } catch (...) {  // out of memory for the event's lists: skipped, like a bad step
    block.clear();
    ++skipped;
    return;
  }
  train_two_tower_block(block, applied, skipped);
}

void Model::fit_two_tower(const std::vector<Resolved>& events, const EventBatch& batch, uint32_t epochs, int threads,
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
  if (sampled_loss() && config_.popularity_negatives() && !sequenced.empty()) {
    SplitMix64 pool_rng(derive_seed(config_.seed, kSequenceStream, call, 0xf00d));
    const uint64_t n = std::min<uint64_t>(kPoolSize, sequenced.size());
    for (uint64_t s = 0; s < n; ++s)
      pool_[s].store(sequenced[pool_rng.below(uint32_t(sequenced.size()))].item, std::memory_order_relaxed);
    if (pool_written_.load(std::memory_order_relaxed) < n) pool_written_.store(n, std::memory_order_release);
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

void Model::train_sequence_epoch(std::vector<SequenceEvent>& events, const std::vector<int64_t>& bounds,
                                 const std::vector<uint32_t>& sequence, uint64_t call, uint32_t epoch) {
  const uint32_t n_neg = sampled_loss() ? config_.negatives : 0;
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
      TwoTowerBlock block;
      for (int part = t; part < parts; part += team_size()) {
        const int64_t begin = bounds[part], end = bounds[part + 1];
        SplitMix64 rng(derive_seed(config_.seed, kSequenceStream, call * 65536 + epoch, part));
        for (int64_t i = end - 1; i > begin; --i) std::swap(events[i], events[begin + rng.below(uint32_t(i - begin + 1))]);
        auto stage = [&](int64_t j) {
          const SequenceEvent& e = events[j];
          uint32_t* neg = ring.data() + (j % kSlots) * n_neg;
          if (n_neg > 0) draw_negatives(e.item, n_items, rng, neg);
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
          add_two_tower_event(block, Resolved{e.user, e.item, e.label, e.weight}, history.data(), e.history_length,
                              ring.data() + (i % kSlots) * n_neg);
          if (block.size() == kTowerBatch) train_two_tower_block(block, applied, skipped);
        }
      }
      train_two_tower_block(block, applied, skipped);
    });
  }
  failure.rethrow();
  updates_.fetch_add(applied, std::memory_order_relaxed);
  skipped_.fetch_add(skipped, std::memory_order_relaxed);
}

}  // namespace rtrec
