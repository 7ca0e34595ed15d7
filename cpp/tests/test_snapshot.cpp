// The snapshot reader: a saved model loads back bit-identical; truncated, corrupted,
// wrong-version and foreign files throw SnapshotError (never crash, never half-load).
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "check.hpp"
#include "test_events.hpp"
#include "rtrec/hash.hpp"
#include "rtrec/model.hpp"
#include "rtrec/snapshot.hpp"

using rtrec::Model;
using rtrec::ModelConfig;
using rtrec::SnapshotError;

namespace {

std::vector<char> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const char* data, size_t n) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data, static_cast<std::streamsize>(n));
}

// True when the two files hold the same bytes; else reports where they first differ.
bool same_bytes(const std::string& a, const std::string& b) {
  const std::vector<char> x = read_bytes(a), y = read_bytes(b);
  if (x == y) return true;
  size_t at = 0;
  while (at < x.size() && at < y.size() && x[at] == y[at]) ++at;
  std::fprintf(stderr, "files differ: %zu and %zu bytes, first difference at byte %zu\n", x.size(), y.size(), at);
  return false;
}

// Removes the files it names when the test ends.
struct TempFiles {
  std::vector<std::string> paths;
  std::string operator()(const std::string& name) {
    paths.push_back(rtrec_test::scratch_path(name));
    return paths.back();
  }
  ~TempFiles() {
    for (const auto& p : paths) std::remove(p.c_str());
  }
};

using rtrec_test::Events;

Events random_events(size_t n, uint64_t users, uint64_t items, double t0, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Events e;
  for (size_t i = 0; i < n; ++i) {
    e.users.push_back(rng() % users);
    e.items.push_back(1000 + rng() % items);
    e.labels.push_back(static_cast<float>(1 + rng() % 5));
    e.times.push_back(t0 + double(i));
  }
  return e;
}

// A small model that uses every section of the format: AdaGrad state, seen sets, side
// features on both sides, evicted rows (so the file renumbers rows), the popularity pool.
// `evict_featured`: the IDs with features are among the evicted ones.
// two_tower models add the tower's weights and the users' histories.
std::unique_ptr<Model> small_model(uint32_t min_count = 1, bool evict_featured = false,
                                   rtrec::Family family = rtrec::Family::kMf) {
  ModelConfig c = rtrec::default_config(family);
  c.dim = 4;
  if (family == rtrec::Family::kTwoTower) {
    c.tower = {8};
    c.history = 5;
    c.negatives = 3;
  } else {
    c.loss = rtrec::Loss::kBpr;
  }
  c.optimizer = rtrec::Optimizer::kAdagrad;
  c.negative_sampling = rtrec::NegativeSampling::kPopularity;
  c.min_count = min_count;
  c.seed = 3;
  auto m = std::make_unique<Model>(c);
  const Events warm = random_events(400, 40, 30, 100.0, 1);
  m->fit(warm.batch(), 2, 1);
  // IDs that only these calls and the events below use.
  const uint64_t items[2] = {5001, 5002}, users[1] = {999};
  m->set_features(true, rtrec::IdBatch{items, nullptr, 2}, {{"genre=a", "genre=b"}, {"genre=b"}});
  m->set_features(false, rtrec::IdBatch{users, nullptr, 1}, {{"age=30"}});
  const Events live = random_events(100, 50, 35, 1000.0, 2);
  m->update(live.batch());
  if (!evict_featured) {  // the featured IDs (and so their features) learn, and stay
    Events e{{999, 999, 999}, {5001, 5002, 1001}, {1, 1, 1}, {1100, 1101, 1102}};
    for (int i = 0; i < min_count; ++i) m->update(e.batch());
  }
  m->evict_before(1000.0 + 30);  // rows not updated since then go
  return m;
}

void check_same_scores(const Model& a, const Model& b) {
  std::vector<uint64_t> users, items;
  for (uint64_t u = 0; u < 60; ++u)
    for (uint64_t i = 995; i < 1040; ++i) users.push_back(u), items.push_back(i);
  std::vector<float> sa(users.size()), sb(users.size());
  a.predict(rtrec::IdBatch{users.data(), nullptr, users.size()}, rtrec::IdBatch{items.data(), nullptr, items.size()},
            sa.data(), 1);
  b.predict(rtrec::IdBatch{users.data(), nullptr, users.size()}, rtrec::IdBatch{items.data(), nullptr, items.size()},
            sb.data(), 1);
  CHECK(std::memcmp(sa.data(), sb.data(), sa.size() * sizeof(float)) == 0);
  for (uint64_t u = 0; u < 60; u += 7) {
    uint64_t ka[10], kb[10];
    float fa[10], fb[10];
    const uint32_t na = a.recommend(u, nullptr, 10, true, 1, rtrec::RecommendOutput{ka, nullptr, fa});
    const uint32_t nb = b.recommend(u, nullptr, 10, true, 1, rtrec::RecommendOutput{kb, nullptr, fb});
    CHECK_EQ(na, nb);
    CHECK(std::memcmp(ka, kb, na * sizeof(uint64_t)) == 0);
    CHECK(std::memcmp(fa, fb, na * sizeof(float)) == 0);
  }
}

// Loading `bytes` must throw SnapshotError (and nothing else).
bool refused(const std::string& path, const std::vector<char>& bytes) {
  write_bytes(path, bytes.data(), bytes.size());
  try {
    rtrec::load_snapshot(path);
  } catch (const SnapshotError&) {
    return true;
  } catch (const std::exception& e) {
    rtrec_test::fail(__FILE__, __LINE__, std::string("a bad file threw something else than SnapshotError: ") + e.what());
    return true;
  }
  return false;
}

void check_round_trip(rtrec::Family family) {
  TempFiles files;
  const std::unique_ptr<Model> m = small_model(1, false, family);
  const rtrec::ModelStats before = m->stats();
  REQUIRE(before.evicted_users + before.evicted_items > 0);  // the file renumbers rows
  REQUIRE(before.n_item_features > 0 && before.n_user_features > 0);
  REQUIRE(before.n_users > 0 && before.n_items > 0);
  const std::string first = files("first"), second = files("second");
  rtrec::save_snapshot(*m, first);
  const std::unique_ptr<Model> loaded = rtrec::load_snapshot(first);
  rtrec::save_snapshot(*loaded, second);
  CHECK(same_bytes(first, second));  // every byte: rows, state, counters
  const rtrec::ModelStats after = loaded->stats();
  CHECK_EQ(after.n_users, before.n_users);
  CHECK_EQ(after.n_items, before.n_items);
  CHECK_EQ(after.updates, before.updates);
  CHECK_EQ(after.seen_pairs, before.seen_pairs);
  CHECK_EQ(after.n_item_features, before.n_item_features);
  CHECK_EQ(after.clock, before.clock);
  CHECK_EQ(after.global_bias, before.global_bias);
  check_same_scores(*m, *loaded);
  // Row values themselves, bit for bit (live rows of the original, looked up by key).
  rtrec::EpochGuard pin;
  bool same = true;
  for (const auto* pair : {&m->users(), &m->items()}) {
    const rtrec::EmbeddingTable& t = *pair;
    const rtrec::EmbeddingTable& u = pair == &m->users() ? loaded->users() : loaded->items();
    const uint32_t accumulator_floats = t.has_row_accumulators() ? 1 : t.stride();  // row-wise AdaGrad: one
    for (uint32_t r = 0; r < t.size(); ++r) {
      if (!t.is_live(r)) continue;
      const uint32_t s = u.find(t.key(r));
      if (s == rtrec::EmbeddingTable::kNotFound) {
        same = false;
        continue;
      }
      same = same && std::memcmp(t.vector(r), u.vector(s), t.stride() * sizeof(float)) == 0 &&
             std::memcmp(t.accumulator(r), u.accumulator(s), accumulator_floats * sizeof(float)) == 0 &&
             t.bias(r) == u.bias(s) && t.bias_accumulator(r) == u.bias_accumulator(s) &&
             t.update_count(r) == u.update_count(s) && t.last_update(r) == u.last_update(s);
      if (t.has_inputs())  // two_tower items: the input vector too
        same = same && std::memcmp(t.input(r), u.input(s), t.stride() * sizeof(float)) == 0 &&
               t.input_accumulator(r) == u.input_accumulator(s);
    }
  }
  CHECK(same);
}

}  // namespace

TEST_CASE(a_saved_model_loads_back_bit_identical) { check_round_trip(rtrec::Family::kMf); }

TEST_CASE(a_saved_two_tower_model_loads_back_bit_identical) { check_round_trip(rtrec::Family::kTwoTower); }

TEST_CASE(admission_counts_round_trip) {
  TempFiles files;
  const std::unique_ptr<Model> m = small_model(/*min_count=*/2);
  const std::string first = files("sketch1"), second = files("sketch2");
  rtrec::save_snapshot(*m, first);
  const std::unique_ptr<Model> loaded = rtrec::load_snapshot(first);
  rtrec::save_snapshot(*loaded, second);
  CHECK(same_bytes(first, second));
  // (stats()["not_admitted"] is not in the format: it restarts at 0 after a load.)
}

TEST_CASE(truncations_are_refused) {
  TempFiles files;
  const std::unique_ptr<Model> m = small_model();
  const std::string good = files("good"), bad = files("truncated");
  rtrec::save_snapshot(*m, good);
  const std::vector<char> bytes = read_bytes(good);
  REQUIRE(bytes.size() > 100);
  // Every length through the header and the first rows and at the end, a sample between.
  size_t accepted = 0;
  for (size_t length = 0; length < bytes.size(); length += (length < 600 || length + 200 > bytes.size()) ? 1 : 11)
    if (!refused(bad, std::vector<char>(bytes.begin(), bytes.begin() + length))) ++accepted;
  CHECK_EQ(accepted, 0u);
  // Extra bytes after the trailer are refused too.
  std::vector<char> longer = bytes;
  longer.push_back('x');
  CHECK(refused(bad, longer));
}

static void check_flips_refused(rtrec::Family family) {
  TempFiles files;
  const std::unique_ptr<Model> m = small_model(1, false, family);
  const std::string good = files("good"), bad = files("flipped");
  rtrec::save_snapshot(*m, good);
  const std::vector<char> bytes = read_bytes(good);
  size_t accepted = 0;
  std::mt19937 rng(9);
  for (size_t at = 0; at < bytes.size(); at += (at < 600 || at + 200 > bytes.size()) ? 1 : 5) {
    std::vector<char> flipped = bytes;
    flipped[at] = static_cast<char>(flipped[at] ^ (1 << (rng() % 8)));
    if (!refused(bad, flipped)) ++accepted;
  }
  CHECK_EQ(accepted, 0u);
  // The untouched file still loads.
  CHECK(rtrec::load_snapshot(good) != nullptr);
}

TEST_CASE(single_bit_flips_are_refused) { check_flips_refused(rtrec::Family::kMf); }

TEST_CASE(single_bit_flips_in_a_two_tower_file_are_refused) { check_flips_refused(rtrec::Family::kTwoTower); }

TEST_CASE(another_format_version_is_refused_by_number) {
  TempFiles files;
  const std::unique_ptr<Model> m = small_model();
  const std::string good = files("good"), bad = files("version");
  rtrec::save_snapshot(*m, good);
  std::vector<char> bytes = read_bytes(good);
  uint32_t version;
  std::memcpy(&version, bytes.data() + 8, 4);  // after the 8-byte magic
  for (uint32_t other : {0u, version + 1, 999u}) {
    std::memcpy(bytes.data() + 8, &other, 4);
    write_bytes(bad, bytes.data(), bytes.size());
    try {
      rtrec::load_snapshot(bad);
      rtrec_test::fail(__FILE__, __LINE__, "a file of another version loaded");
    } catch (const SnapshotError& e) {
      const std::string expected = "version " + std::to_string(other);
      CHECK(std::string(e.what()).find(expected) != std::string::npos);
    }
  }
}

TEST_CASE(foreign_and_missing_files_are_refused) {
  TempFiles files;
  const std::string bad = files("foreign");
  CHECK(refused(bad, {}));
  const std::string text = "user,item,rating\n1,2,3\n";
  CHECK(refused(bad, std::vector<char>(text.begin(), text.end())));
  std::mt19937 rng(1);
  std::vector<char> noise(4096);
  for (char& c : noise) c = static_cast<char>(rng());
  CHECK(refused(bad, noise));
  CHECK_THROWS(rtrec::load_snapshot(files("never-written")), rtrec::MissingFileError);
}

TEST_CASE(a_damaged_delta_is_refused_and_changes_nothing) {
  TempFiles files;
  const std::unique_ptr<Model> trainer = small_model();
  const std::string base = files("base"), delta = files("delta"), bad = files("bad-delta");
  const std::string before = files("before"), after = files("after");
  rtrec::save_snapshot(*trainer, base);
  const Events more = random_events(80, 70, 40, 2000.0, 4);
  trainer->update(more.batch());
  trainer->evict_before(2000.0 + 40);
  rtrec::save_delta(*trainer, delta);
  const std::vector<char> bytes = read_bytes(delta);
  // A delta is not a snapshot.
  CHECK(refused(bad, bytes));
  const std::unique_ptr<Model> replica = rtrec::load_snapshot(base);
  rtrec::save_snapshot(*replica, before);
  size_t accepted = 0;
  for (size_t at = 0; at < bytes.size(); at += 7) {
    std::vector<char> damaged = bytes;
    if (at % 2 == 0) damaged.resize(at);  // truncated
    else damaged[at] = static_cast<char>(damaged[at] ^ 0x10);
    write_bytes(bad, damaged.data(), damaged.size());
    try {
      rtrec::apply_delta(*replica, bad);
      ++accepted;
    } catch (const SnapshotError&) {
    }
  }
  CHECK_EQ(accepted, 0u);
  rtrec::save_snapshot(*replica, after);
  CHECK(same_bytes(before, after));  // no refused delta changed anything
  // The intact delta applies, and the replica then scores like the trainer.
  rtrec::apply_delta(*replica, delta);
  check_same_scores(*trainer, *replica);
}
