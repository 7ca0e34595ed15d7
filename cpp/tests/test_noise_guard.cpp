// NoiseGuard: duplicates inside the window and a user's events over the rate are refused,
// the rest learned; under many threads every event gets exactly one verdict and the state
// stays the fixed arrays it started with. AdaptiveStep: agreeing residuals keep full steps,
// contradicting ones are damped.
#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "check.hpp"
#include "rtrec/noise_guard.hpp"

using rtrec::AdaptiveStep;
using rtrec::NoiseGuard;
using Verdict = NoiseGuard::Verdict;

TEST_CASE(duplicates_inside_the_window_are_refused_in_either_time_order) {
  NoiseGuard guard(60.0, 0.0);
  CHECK(guard.check(1, 2, 4.0f, 100.0) == Verdict::kLearn);
  CHECK(guard.check(1, 2, 4.0f, 130.0) == Verdict::kDuplicate);
  CHECK(guard.check(1, 2, 4.0f, 50.0) == Verdict::kDuplicate);   // out of order, 50 s before
  CHECK(guard.check(1, 2, 5.0f, 130.0) == Verdict::kLearn);      // another label
  CHECK(guard.check(1, 3, 4.0f, 130.0) == Verdict::kLearn);      // another item
  CHECK(guard.check(2, 2, 4.0f, 130.0) == Verdict::kLearn);      // another user
  CHECK(guard.check(1, 2, 4.0f, 161.0) == Verdict::kLearn);      // outside the window
}

TEST_CASE(a_users_events_beyond_the_rate_wait_for_the_bucket_to_refill) {
  NoiseGuard guard(0.0, 2.0);  // 2 per second, a bucket of 2
  CHECK(guard.check(7, 1, 1.0f, 10.0) == Verdict::kLearn);
  CHECK(guard.check(7, 1, 1.0f, 10.0) == Verdict::kLearn);  // no dedup: identical is fine
  CHECK(guard.check(7, 2, 1.0f, 10.0) == Verdict::kRateLimited);
  CHECK(guard.check(8, 2, 1.0f, 10.0) == Verdict::kLearn);  // another user has their own bucket
  CHECK(guard.check(7, 2, 1.0f, 9.0) == Verdict::kRateLimited);  // the past refills nothing
  CHECK(guard.check(7, 2, 1.0f, 10.5) == Verdict::kLearn);  // half a second: one more
  CHECK(guard.check(7, 2, 1.0f, 10.5) == Verdict::kRateLimited);
}

STRESS_CASE(every_event_gets_one_verdict_under_many_threads) {
  NoiseGuard guard(5.0, 3.0);
  constexpr int kThreads = 8, kEvents = 200000;
  std::atomic<uint64_t> learned{0}, duplicate{0}, limited{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      uint64_t state = 0x9e3779b97f4a7c15ull * (t + 1);
      for (int i = 0; i < kEvents; ++i) {
        state = rtrec::mix64(state + i);
        const uint64_t user = state % 5000, item = (state >> 20) % 50;
        const float label = float((state >> 40) % 2);
        switch (guard.check(user, item, label, double(i) * 0.01)) {
          case Verdict::kLearn: learned.fetch_add(1); break;
          case Verdict::kDuplicate: duplicate.fetch_add(1); break;
          case Verdict::kRateLimited: limited.fetch_add(1); break;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK_EQ(learned.load() + duplicate.load() + limited.load(), uint64_t(kThreads) * kEvents);
  CHECK(duplicate.load() > 0);
  CHECK(limited.load() > 0);
  CHECK(learned.load() > 0);
}

TEST_CASE(agreeing_residuals_keep_full_steps_and_contradicting_ones_are_damped) {
  AdaptiveStep step;
  for (int i = 0; i < 20; ++i) CHECK(step.scale(1, 1, -1.5f) == 1.0f);
  float last = 1.0f;
  for (int i = 0; i < 40; ++i) last = step.scale(2, 2, i % 2 == 0 ? 2.0f : -2.0f);
  CHECK(last < 0.3f);
  CHECK(last >= AdaptiveStep::kFloor);
}
