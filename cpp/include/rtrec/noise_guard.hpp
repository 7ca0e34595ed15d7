// Defences of the real-time path against noisy feedback, with bounded memory whatever the
// number of users: NoiseGuard drops exact duplicates and a user's events beyond a rate cap
// before they are learned; AdaptiveStep scales a step down for rows whose recent residuals
// disagree in sign.
//
// Both remember recent events, users and rows in fixed arrays of slots (allocated once,
// never resized or freed while the model lives), indexed by a hash of the ID key, not by
// table row: eviction has nothing to clean up (an evicted user's slot is simply taken over
// by the next user hashed there), and a recycled row cannot inherit another ID's state.
// What this costs is forgetting: when two keys share a slot the newer one takes it over,
// so a duplicate may then be learned, or a user's rate bucket start full again. It never
// drops an event it should not (a slot holds its full key and is compared exactly).
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>

#include "rtrec/hash.hpp"

namespace rtrec {

class NoiseGuard {
 public:
  enum class Verdict { kLearn, kDuplicate, kRateLimited };
  static constexpr uint32_t kEventSlots = 1u << 18;  // recent distinct events remembered
  static constexpr uint32_t kUserSlots = 1u << 16;   // users with a rate bucket at once
  static constexpr uint32_t kLocks = 1024;           // stripes: slot s is guarded by lock s % kLocks

  // window: seconds (0: no deduplication); rate: events per second per user (0: no cap).
  NoiseGuard(double window, double rate)
      : window_(window), rate_(rate), burst_(std::max(1.0, rate)),
        events_(window > 0.0 ? new EventSlot[kEventSlots] : nullptr),
        users_(rate > 0.0 ? new UserSlot[kUserSlots] : nullptr) {}

  // Whether to learn the event of `user` on `item` with `label` at `time` (seconds of event
  // time). A duplicate does not use up the user's rate; a learned event is remembered for
  // deduplication. Safe to call from any number of threads: each slot is read and written
  // under its stripe's lock, so no two threads ever see a half-written slot.
  Verdict check(uint64_t user, uint64_t item, float label, double time) {
    std::unique_lock<std::mutex> event_lock;
    EventSlot* event = nullptr;
    uint32_t label_bits = 0;
    if (events_) {
      static_assert(sizeof label_bits == sizeof label, "float is 32 bits");
      std::memcpy(&label_bits, &label, sizeof label);
      const uint64_t fingerprint = mix64(user ^ mix64(item ^ mix64(uint64_t(label_bits) + 0x9e3779b97f4a7c15ull)));
      const uint32_t s = static_cast<uint32_t>(fingerprint % kEventSlots);
      event_lock = std::unique_lock<std::mutex>(event_locks_[s % kLocks]);
      event = &events_[s];
      // Out-of-order events count too: the distance in time, whichever came first.
      if (event->used && event->user == user && event->item == item && event->label_bits == label_bits &&
          std::fabs(time - event->time) <= window_)
        return Verdict::kDuplicate;
    }
    if (users_) {
      const uint32_t s = static_cast<uint32_t>(mix64(user ^ 0x5bd1e995ull) % kUserSlots);
      std::lock_guard<std::mutex> user_lock(user_locks_[s % kLocks]);
      UserSlot& u = users_[s];
      if (!u.used || u.user != user) u = UserSlot{user, burst_, time, true};
      if (time > u.time) {  // refill by event time; an event from the past refills nothing
        u.tokens = std::min(burst_, u.tokens + (time - u.time) * rate_);
        u.time = time;
      }
      if (u.tokens < 1.0) return Verdict::kRateLimited;
      u.tokens -= 1.0;
    }
    if (event) *event = EventSlot{user, item, time, label_bits, true};
    return Verdict::kLearn;
  }

  static uint64_t memory_bytes(double window, double rate) noexcept {
    return (window > 0.0 ? uint64_t(kEventSlots) * sizeof(EventSlot) : 0) +
           (rate > 0.0 ? uint64_t(kUserSlots) * sizeof(UserSlot) : 0);
  }

 private:
  struct EventSlot {
    uint64_t user = 0, item = 0;
    double time = 0.0;
    uint32_t label_bits = 0;
    bool used = false;
  };
  struct UserSlot {
    uint64_t user = 0;
    double tokens = 0.0, time = 0.0;
    bool used = false;
  };
  const double window_, rate_, burst_;
  std::unique_ptr<EventSlot[]> events_;
  std::unique_ptr<UserSlot[]> users_;
  std::mutex event_locks_[kLocks];
  std::mutex user_locks_[kLocks];
};

// Per-row step scale from the agreement of recent residuals (d loss / d score): an
// exponential average m of the residual and a of its magnitude; |m| / a is 1 when they all
// point one way (the row is still learning something) and near 0 when they flip sign from
// event to event (labels that contradict each other: noise, or a row that has converged).
// The step of an event is the learning rate times the geometric mean of its two rows'
// scales, at least kFloor. Slots hold their key: a slot taken over by another key restarts
// neutral. Values are Hogwild (relaxed atomics, races only blur the averages).
class AdaptiveStep {
 public:
  static constexpr uint32_t kSlots = 1u << 16;  // per side (users, items)
  static constexpr float kDecay = 0.9f;         // about the last 10 events of the row
  static constexpr float kFloor = 0.1f;

  AdaptiveStep() : users_(new Slot[kSlots]), items_(new Slot[kSlots]) {}

  // Records the residual `g` of an event and returns the step scale for it.
  float scale(uint64_t user, uint64_t item, float g) noexcept {
    const float su = observe(users_[mix64(user ^ 0x2545f491ull) % kSlots], user, g);
    const float si = observe(items_[mix64(item ^ 0x9e3779b9ull) % kSlots], item, g);
    return std::max(kFloor, std::sqrt(su * si));
  }

  static constexpr uint64_t memory_bytes() noexcept { return 2ull * kSlots * sizeof(Slot); }

 private:
  struct Slot {
    std::atomic<uint64_t> key{0};
    std::atomic<float> mean{0.0f}, magnitude{0.0f};
  };
  static float observe(Slot& slot, uint64_t key, float g) noexcept {
    float mean = 0.0f, magnitude = 0.0f;
    if (slot.key.load(std::memory_order_relaxed) == key) {
      mean = slot.mean.load(std::memory_order_relaxed);
      magnitude = slot.magnitude.load(std::memory_order_relaxed);
    } else {
      slot.key.store(key, std::memory_order_relaxed);
    }
    if (!std::isfinite(g)) return 1.0f;
    mean = kDecay * mean + (1.0f - kDecay) * g;
    magnitude = kDecay * magnitude + (1.0f - kDecay) * std::fabs(g);
    slot.mean.store(mean, std::memory_order_relaxed);
    slot.magnitude.store(magnitude, std::memory_order_relaxed);
    return magnitude > 0.0f ? std::min(1.0f, std::fabs(mean) / magnitude) : 1.0f;
  }
  std::unique_ptr<Slot[]> users_, items_;
};

}  // namespace rtrec
