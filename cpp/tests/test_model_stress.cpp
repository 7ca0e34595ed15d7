// The whole Model under concurrent use, the way a serving process uses it: trainers stream
// new IDs through a capped table (evictions and row recycling all the time), readers
// recommend and predict, and other threads evict, change side features and save
// snapshots and deltas. Structure must hold: results name only real items, once each,
// with finite scores. Mainly a target for the sanitizer builds (see .ci/sanitizers).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "check.hpp"
#include "test_events.hpp"
#include "rtrec/hash.hpp"
#include "rtrec/model.hpp"
#include "rtrec/snapshot.hpp"

using rtrec::Model;
using rtrec::ModelConfig;

namespace {

constexpr uint64_t kItemBase = 1u << 20;  // item keys are kItemBase + n, user keys n
constexpr uint32_t kRounds = 1000;
// Eviction rounds of the evicted-and-re-added case: its readers sort every item each time,
// which ThreadSanitizer slows down the most (and that case is about ordering, not races).
#if defined(__SANITIZE_THREAD__)
constexpr int kChurnRounds = 150;
#else
constexpr int kChurnRounds = 1000;
#endif

using Batch = rtrec_test::Events;

// Checks one recommendation result: known item keys, each once, finite scores, best first.
void check_result(const uint64_t* keys, const float* scores, uint32_t n, uint64_t item_top) {
  std::vector<uint64_t> sorted(keys, keys + n);
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end())
    rtrec_test::fail(__FILE__, __LINE__, "an item was recommended twice");
  for (uint32_t j = 0; j < n; ++j) {
    if (keys[j] < kItemBase || keys[j] >= kItemBase + item_top)
      rtrec_test::fail(__FILE__, __LINE__, "a recommended key is not an item key");
    if (!std::isfinite(scores[j])) rtrec_test::fail(__FILE__, __LINE__, "a non-finite score");
    if (j > 0 && scores[j] > scores[j - 1]) rtrec_test::fail(__FILE__, __LINE__, "results not best first");
  }
}

// Two trainers, two readers and a chores thread (evict, set features, save) on one model.
void serve_and_train_at_once(const ModelConfig& c, uint32_t rounds) {
  Model model(c);
  std::atomic<uint64_t> user_top{1}, item_top{1};  // keys below these may exist
  std::atomic<int> trainers_done{0};
  std::atomic<uint64_t> reads{0};
  const std::string snapshot = rtrec_test::scratch_path("stress.snap");
  const std::string delta = snapshot + ".delta";

  auto trainer = [&](uint64_t seed) {
    std::mt19937_64 rng(seed);
    for (uint32_t round = 0; round < rounds; ++round) {
      Batch b;
      const uint64_t users = user_top.fetch_add(8), items = item_top.fetch_add(8);
      for (int j = 0; j < 48; ++j) {
        // Mostly recent IDs, some new: the cap evicts the least recently updated.
        b.users.push_back(users + 8 - 1 - rng() % std::min<uint64_t>(users + 8, 400));
        b.items.push_back(kItemBase + items + 8 - 1 - rng() % std::min<uint64_t>(items + 8, 400));
        b.labels.push_back(1.0f);
        b.times.push_back(double(round) + 1.0);
      }
      if (round % 10 == 5) model.fit(b.batch(), 1, 1);
      else model.update(b.batch());
    }
    trainers_done.fetch_add(1);
  };

  auto reader = [&](uint64_t seed) {
    std::mt19937_64 rng(seed);
    uint64_t keys[20 * 4];
    float scores[20 * 4];
    uint32_t counts[4];
    uint64_t n = 0;
    while (trainers_done.load() < 2 || n == 0) {
      const uint64_t user = rng() % user_top.load();
      const uint32_t found = model.recommend(user, nullptr, 20, true, 1, rtrec::RecommendOutput{keys, nullptr, scores});
      // Loaded after the call: items created during it may be in the result.
      check_result(keys, scores, found, item_top.load());
      uint64_t users[4];
      for (auto& u : users) u = rng() % user_top.load();
      model.recommend_batch(rtrec::IdBatch{users, nullptr, 4}, 20, true, 1, rtrec::RecommendOutput{keys, nullptr, scores},
                            counts);
      const uint64_t top = item_top.load();
      for (int q = 0; q < 4; ++q) check_result(keys + 20 * q, scores + 20 * q, counts[q], top);
      uint64_t pu[16], pi[16];
      float out[16];
      for (int j = 0; j < 16; ++j) pu[j] = rng() % user_top.load(), pi[j] = kItemBase + rng() % item_top.load();
      model.predict(rtrec::IdBatch{pu, nullptr, 16}, rtrec::IdBatch{pi, nullptr, 16}, out, 1);
      for (float s : out)
        if (!std::isfinite(s)) rtrec_test::fail(__FILE__, __LINE__, "a non-finite prediction");
      // Every retrieval query kind and filter while rows come and go (the allow-list and the
      // deny-list reuse the predict draws; a tag may not exist yet, an item may be evicted).
      const rtrec::IdBatch listed{pi, nullptr, 16};
      const std::vector<std::string> tags{"tag=" + std::to_string(rng() % 20)};
      rtrec::CandidateFilter filter;
      filter.allow = (n % 2 == 0) ? &listed : nullptr;
      filter.deny = (n % 2 == 1) ? &listed : nullptr;
      filter.tags = (n % 3 == 0) ? &tags : nullptr;
      const rtrec::RecommendOutput o{keys, nullptr, scores};
      try {
        uint32_t got = model.recommend(user, nullptr, 20, true, 1, o, n % 5 == 0 ? 0.5f : 0.0f, filter);
        for (uint32_t j = 0; j < got; ++j)
          if (keys[j] < kItemBase || keys[j] >= kItemBase + item_top.load())
            rtrec_test::fail(__FILE__, __LINE__, "a filtered result is not an item key");
        got = model.recommend_for_history(listed, nullptr, 20, true, 1, o, 0.0f, filter);
        check_result(keys, scores, got, item_top.load());
        got = model.similar_items(pi[0], nullptr, 20, 1, o, filter);
        check_result(keys, scores, got, item_top.load());
      } catch (const std::out_of_range&) {  // a tag not given yet, an item evicted meanwhile
      }
      model.stats();
      ++n;
    }
    reads.fetch_add(n);
  };

  // Evicts, changes item features and publishes, like a maintenance / publisher thread.
  auto chores = [&] {
    std::mt19937_64 rng(99);
    rtrec::save_snapshot(model, snapshot);  // starts the lineage: deltas from here on
    int round = 0;
    while (trainers_done.load() < 2) {
      const rtrec::ModelStats s = model.stats();
      model.evict_before(s.clock - 20.0);
      uint64_t ids[3];
      std::vector<std::vector<std::string>> features(3);
      for (int j = 0; j < 3; ++j) {
        ids[j] = kItemBase + rng() % item_top.load();
        for (uint64_t f = 0; f < rng() % 3; ++f) features[j].push_back("tag=" + std::to_string(rng() % 20));
      }
      model.set_features(true, rtrec::IdBatch{ids, nullptr, 3}, features);
      model.hide(rtrec::IdBatch{ids, nullptr, 2}, true);
      model.hide(rtrec::IdBatch{ids + 1, nullptr, 2}, false);
      if (++round % 4 == 0) rtrec::save_delta(model, delta);
      if (round % 16 == 0) rtrec::save_snapshot(model, snapshot);
    }
  };

  std::thread t1(trainer, 1), t2(trainer, 2), r1(reader, 3), r2(reader, 4), ch(chores);
  t1.join();
  t2.join();
  r1.join();
  r2.join();
  ch.join();
  CHECK(reads.load() > 0);
  const rtrec::ModelStats s = model.stats();
  CHECK(s.n_users <= c.max_rows);
  CHECK(s.n_items <= c.max_rows);
  CHECK(s.evicted_users > 0 && s.evicted_items > 0);
  CHECK(s.updates > 0);
  // The files written under load were whole (each load verifies its checksums).
  CHECK(rtrec::load_snapshot(snapshot) != nullptr);
  rtrec::save_snapshot(model, snapshot);
  const std::unique_ptr<Model> loaded = rtrec::load_snapshot(snapshot);
  CHECK_EQ(loaded->stats().n_items, s.n_items);
  CHECK_EQ(loaded->stats().n_users, s.n_users);
  std::remove(snapshot.c_str());
  std::remove(delta.c_str());
}

ModelConfig capped(rtrec::Family family) {
  ModelConfig c = rtrec::default_config(family);
  c.dim = 8;
  c.negatives = 2;
  c.max_rows = 700;  // far fewer rows than IDs: rows are evicted and recycled all the time
  c.seed = 1;
  if (family == rtrec::Family::kTwoTower) {
    c.tower = {16};
    c.history = 8;
  }
  return c;
}

}  // namespace

STRESS_CASE(mf_trains_serves_evicts_and_saves_at_once) {
  ModelConfig c = capped(rtrec::Family::kMf);
  c.loss = rtrec::Loss::kBpr;
  serve_and_train_at_once(c, kRounds);
}

STRESS_CASE(two_tower_trains_serves_evicts_and_saves_at_once) {
  // Also the users' histories: pushed by training, pooled by every read, purged of evicted
  // items by recycling.
  serve_and_train_at_once(capped(rtrec::Family::kTwoTower), kRounds / 2);  // each step costs more
}

STRESS_CASE(string_ids_keep_their_names_while_rows_are_recycled) {
  // With string IDs a recycled row gets a new key *and* a new name: a reader must never
  // see one without the other (a name whose hash is not the returned key).
  ModelConfig c;
  c.dim = 8;
  c.loss = rtrec::Loss::kBpr;
  c.optimizer = rtrec::Optimizer::kSgd;
  c.max_rows = 300;
  c.seed = 2;
  Model model(c);
  std::atomic<uint64_t> top{1};
  std::atomic<bool> done{false};
  std::atomic<uint64_t> reads{0};

  std::thread trainer([&] {
    std::mt19937_64 rng(5);
    for (uint32_t round = 0; round < kRounds; ++round) {
      const uint64_t base = top.fetch_add(6);
      std::vector<std::string> users, items;
      std::vector<uint64_t> user_keys, item_keys;
      for (int j = 0; j < 24; ++j) {
        const uint64_t n = base + 6 - 1 - rng() % std::min<uint64_t>(base + 6, 200);
        users.push_back("user-" + std::to_string(n));
        items.push_back("item-" + std::to_string(n + rng() % 3));
        user_keys.push_back(rtrec::hash_string_id(users.back()));
        item_keys.push_back(rtrec::hash_string_id(items.back()));
      }
      rtrec::EventBatch b;
      b.users = rtrec::IdBatch{user_keys.data(), users.data(), users.size()};
      b.items = rtrec::IdBatch{item_keys.data(), items.data(), items.size()};
      b.size = users.size();
      model.update(b);
    }
    done.store(true);
  });
  auto reader = [&](uint64_t seed) {
    std::mt19937_64 rng(seed);
    uint64_t keys[16];
    std::string names[16];
    float scores[16];
    uint64_t n = 0;
    while (!done.load() || n == 0) {
      const std::string user = "user-" + std::to_string(rng() % top.load());
      const uint32_t found = model.recommend(rtrec::hash_string_id(user), &user, 16, true, 1,
                                             rtrec::RecommendOutput{keys, names, scores});
      for (uint32_t j = 0; j < found; ++j)
        if (names[j].rfind("item-", 0) != 0 || rtrec::hash_string_id(names[j]) != keys[j])
          rtrec_test::fail(__FILE__, __LINE__, "a result's name does not belong to its key");
      ++n;
    }
    reads.fetch_add(n);
  };
  std::thread r1(reader, 7), r2(reader, 8);
  trainer.join();
  r1.join();
  r2.join();
  CHECK(reads.load() > 0);
  CHECK(model.stats().evicted_items > 0);
}

// A replica that follows a trainer's deltas (evictions and features included) while its
// own readers serve. apply_delta overwrites row values under the readers by design (a value
// race like Hogwild's, in snapshot.cpp), so this case is left out of the ThreadSanitizer run;
// the plain and ASan runs check its structure.
#if !defined(__SANITIZE_THREAD__)
STRESS_CASE(a_replica_follows_deltas_while_serving) {
  ModelConfig c;
  c.dim = 8;
  c.loss = rtrec::Loss::kBpr;
  c.optimizer = rtrec::Optimizer::kAdagrad;
  c.max_rows = 400;
  c.seed = 4;
  Model trainer(c);
  const std::string base = rtrec_test::scratch_path("replica.snap");
  auto delta_path = [&](uint64_t i) { return base + ".delta-" + std::to_string(i); };
  rtrec::save_snapshot(trainer, base);
  const std::unique_ptr<Model> replica = rtrec::load_snapshot(base);
  std::atomic<uint64_t> published{0};  // deltas 1..published are written
  std::atomic<bool> done{false};
  std::atomic<uint64_t> item_top{1};
  constexpr uint64_t kDeltas = 60;

  std::thread train([&] {
    std::mt19937_64 rng(11);
    for (uint64_t d = 1; d <= kDeltas; ++d) {
      for (int round = 0; round < 5; ++round) {
        Batch b;
        const uint64_t items = item_top.fetch_add(5);
        for (int j = 0; j < 32; ++j) {
          b.users.push_back(rng() % 500);
          b.items.push_back(kItemBase + items + 5 - 1 - rng() % std::min<uint64_t>(items + 5, 300));
          b.labels.push_back(1.0f);
          b.times.push_back(double(d) * 10 + round);
        }
        trainer.update(b.batch());
      }
      if (d % 7 == 0) {
        const uint64_t ids[2] = {kItemBase + rng() % item_top.load(), kItemBase + rng() % item_top.load()};
        trainer.set_features(true, rtrec::IdBatch{ids, nullptr, 2}, {{"f" + std::to_string(d % 5)}, {}});
      }
      rtrec::save_delta(trainer, delta_path(d));
      published.store(d, std::memory_order_release);
    }
  });
  std::thread follow([&] {
    for (uint64_t d = 1; d <= kDeltas; ++d) {
      while (published.load(std::memory_order_acquire) < d) std::this_thread::yield();
      rtrec::apply_delta(*replica, delta_path(d));
    }
    done.store(true);
  });
  auto reader = [&](uint64_t seed) {
    std::mt19937_64 rng(seed);
    uint64_t keys[20];
    float scores[20];
    while (!done.load()) {
      const uint32_t found =
          replica->recommend(rng() % 500, nullptr, 20, true, 1, rtrec::RecommendOutput{keys, nullptr, scores});
      check_result(keys, scores, found, item_top.load());
      replica->stats();
    }
  };
  std::thread r1(reader, 21), r2(reader, 22);
  train.join();
  follow.join();
  r1.join();
  r2.join();
  // Caught up and quiet: the replica scores every pair exactly as the trainer does.
  std::vector<uint64_t> users, items;
  for (uint64_t u = 0; u < 500; u += 3)
    for (uint64_t i = 0; i < item_top.load(); i += 7) users.push_back(u), items.push_back(kItemBase + i);
  std::vector<float> a(users.size()), b(users.size());
  trainer.predict(rtrec::IdBatch{users.data(), nullptr, users.size()}, rtrec::IdBatch{items.data(), nullptr, items.size()},
                  a.data(), 1);
  replica->predict(rtrec::IdBatch{users.data(), nullptr, users.size()},
                   rtrec::IdBatch{items.data(), nullptr, items.size()}, b.data(), 1);
  CHECK(a == b);
  CHECK_EQ(replica->stats().n_items, trainer.stats().n_items);
  CHECK(trainer.stats().evicted_items > 0);
  std::remove(base.c_str());
  for (uint64_t d = 1; d <= kDeltas; ++d) std::remove(delta_path(d).c_str());
}
#endif

STRESS_CASE(an_item_evicted_and_readded_during_a_scan_is_listed_once) {
  // Items are evicted and come back (under new rows) over and over while readers ask for
  // every item at once: a scan that read an old row's live flag before the eviction and
  // reaches the new row later must still list the item once.
  ModelConfig c = rtrec::default_config(rtrec::Family::kMf);
  c.dim = 8;
  c.seed = 3;
  Model model(c);
  constexpr uint64_t kStable = 6000;  // six chunks: a scan takes a while
  constexpr uint64_t kChurned = 200;  // the items that come and go
  Batch churn_batch;  // old events: the next eviction takes these items (and user 999)
  for (uint64_t i = 0; i < kChurned; ++i) {
    churn_batch.users.push_back(999);
    churn_batch.items.push_back(kItemBase + kStable + i);
    churn_batch.labels.push_back(1.0f);
    churn_batch.times.push_back(1.0);
  }
  // The churned items first: they start in the first chunk a scan reads, and while a scan
  // holds those rows their next rows are fresh ones at the end, in the last chunk read.
  model.update(churn_batch.batch());
  {
    Batch b;
    for (uint64_t i = 0; i < kStable; ++i) {
      b.users.push_back(i % 50);
      b.items.push_back(kItemBase + i);
      b.labels.push_back(1.0f);
      b.times.push_back(1e6);  // recent: never evicted below
    }
    model.update(b.batch());
  }
  std::atomic<bool> done{false};
  std::atomic<uint64_t> scans{0}, duplicates{0};
  std::thread churn([&] {
    for (int round = 0; round < kChurnRounds; ++round) {
      model.evict_before(2.0);
      model.update(churn_batch.batch());
    }
    done.store(true);
  });
  auto reader = [&](uint64_t seed) {
    std::mt19937_64 rng(seed);
    const uint32_t k = uint32_t(kStable + kChurned);
    std::vector<uint64_t> keys(k);
    std::vector<float> scores(k);
    uint64_t n = 0;
    while (!done.load() || n == 0) {
      const uint32_t found =
          model.recommend(rng() % 50, nullptr, k, false, 1, rtrec::RecommendOutput{keys.data(), nullptr, scores.data()});
      std::sort(keys.begin(), keys.begin() + found);
      if (std::adjacent_find(keys.begin(), keys.begin() + found) != keys.begin() + found) duplicates.fetch_add(1);
      ++n;
    }
    scans.fetch_add(n);
  };
  std::thread r1(reader, 1), r2(reader, 2);
  churn.join();
  r1.join();
  r2.join();
  CHECK(scans.load() > 0);
  CHECK_EQ(duplicates.load(), 0u);
}

STRESS_CASE(shared_rows_merge_while_the_model_trains_and_serves) {
  // Partitioned training: a peer's increments (new items among them) are added while this
  // trainer learns its own users and readers recommend. Structure must hold, and every item
  // the peer created must end up known here.
  for (const rtrec::Family family : {rtrec::Family::kMf, rtrec::Family::kTwoTower}) {
    ModelConfig c = capped(family);
    c.max_rows = 0;  // every peer item stays
    Model model(c), peer(c);
    Model::SharedRows base = peer.shared_rows();
    std::atomic<bool> done{false};
    std::thread merger([&] {
      for (uint64_t round = 0; round < 40; ++round) {
        Batch b;
        for (uint64_t i = 0; i < 50; ++i) {
          b.users.push_back(100000 + i);
          b.items.push_back(kItemBase + 5000 + round * 50 + i);
          b.labels.push_back(1.0f);
          b.times.push_back(double(round));
        }
        peer.update(b.batch());
        const Model::SharedRows inc = peer.shared_increment(base);
        base = peer.shared_rows();
        model.add_shared(inc);
      }
      done.store(true);
    });
    std::thread trainer([&] {
      std::mt19937_64 rng(5);
      while (!done.load()) {
        Batch b;
        for (int i = 0; i < 20; ++i) {
          b.users.push_back(rng() % 300);
          b.items.push_back(kItemBase + rng() % 400);
          b.labels.push_back(1.0f);
          b.times.push_back(1.0);
        }
        model.update(b.batch());
      }
    });
    auto reader = [&](uint64_t seed) {
      std::mt19937_64 rng(seed);
      std::vector<uint64_t> keys(10);
      std::vector<float> scores(10);
      while (!done.load()) {
        const uint32_t found =
            model.recommend(rng() % 300, nullptr, 10, true, 1, rtrec::RecommendOutput{keys.data(), nullptr, scores.data()});
        check_result(keys.data(), scores.data(), found, kItemBase + 5000 + 40 * 50);
      }
    };
    std::thread r1(reader, 1), r2(reader, 2);
    merger.join();
    trainer.join();
    r1.join();
    r2.join();
    for (uint64_t i = 0; i < 40 * 50; ++i) CHECK(model.items().find(kItemBase + 5000 + i) != rtrec::EmbeddingTable::kNotFound);
  }
}
