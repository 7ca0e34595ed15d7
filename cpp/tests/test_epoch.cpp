// EpochDomain / RetireList: nothing retired is freed while a thread that was pinned before
// its removal is still pinned; it is freed once that thread unpins.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "check.hpp"
#include "rtrec/epoch.hpp"

using rtrec::EpochDomain;
using rtrec::EpochGuard;
using rtrec::RetireList;

namespace {

// A one-shot signal between two threads.
class Latch {
 public:
  void set() {
    std::lock_guard<std::mutex> lock(mutex_);
    set_ = true;
    cv_.notify_all();
  }
  void wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait(lock, [&] { return set_; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool set_ = false;
};

}  // namespace

TEST_CASE(retired_while_this_thread_is_pinned_waits_until_it_unpins) {
  RetireList list;
  int freed = 0;
  {
    EpochGuard pin;
    list.reserve_one();
    list.retire([&] { ++freed; });
    CHECK_EQ(list.collect(), 1u);
    CHECK_EQ(freed, 0);
  }
  CHECK_EQ(list.collect(), 0u);
  CHECK_EQ(freed, 1);
  CHECK_EQ(list.collect(), 0u);  // freed once, not twice
  CHECK_EQ(freed, 1);
}

TEST_CASE(nested_pins_hold_until_the_outermost_unpins) {
  RetireList list;
  int freed = 0;
  {
    EpochGuard outer;
    {
      EpochGuard inner;
      list.reserve_one();
      list.retire([&] { ++freed; });
    }
    list.collect();
    CHECK_EQ(freed, 0);  // the inner unpin must not unpin the thread
  }
  list.collect();
  CHECK_EQ(freed, 1);
}

TEST_CASE(another_threads_pin_holds_and_its_unpin_releases) {
  RetireList list;
  std::atomic<int> freed{0};
  Latch pinned, retired, checked;
  std::thread reader([&] {
    EpochGuard pin;
    pinned.set();
    retired.wait();
    checked.wait();
  });
  pinned.wait();
  list.reserve_one();
  list.retire([&] { freed.fetch_add(1); });
  retired.set();
  CHECK_EQ(list.collect(), 1u);
  CHECK_EQ(freed.load(), 0);
  // A thread that pins after the removal cannot reach the thing: it does not hold it up.
  std::thread late([&] {
    EpochGuard pin;
    CHECK(EpochDomain::instance().min_pinned() < EpochDomain::instance().advance());
  });
  late.join();
  checked.set();
  reader.join();
  CHECK_EQ(list.collect(), 0u);
  CHECK_EQ(freed.load(), 1);
}

TEST_CASE(a_thread_pinned_after_the_retire_does_not_delay_it) {
  RetireList list;
  std::atomic<int> freed{0};
  list.reserve_one();
  list.retire([&] { freed.fetch_add(1); });
  Latch pinned, release;
  std::thread reader([&] {
    EpochGuard pin;
    pinned.set();
    release.wait();
  });
  pinned.wait();
  CHECK_EQ(list.collect(), 0u);
  CHECK_EQ(freed.load(), 1);
  release.set();
  reader.join();
}

TEST_CASE(min_pinned_reports_the_oldest_pinned_epoch) {
  EpochDomain& d = EpochDomain::instance();
  CHECK(d.min_pinned() > 0);
  uint64_t tag;
  {
    EpochGuard pin;
    tag = d.advance();  // this thread pinned at or before `tag`
    d.advance();
    CHECK(d.min_pinned() <= tag);
  }
  CHECK(d.min_pinned() > tag);
}

TEST_CASE(exited_threads_give_their_slots_back) {
  // More threads than there are slots, one after another: each frees its slot on exit.
  for (uint32_t i = 0; i < EpochDomain::kSlots + 100; ++i) {
    std::thread t([] { EpochGuard pin; });
    t.join();
  }
  RetireList list;
  int freed = 0;
  list.reserve_one();
  list.retire([&] { ++freed; });
  list.collect();
  CHECK_EQ(freed, 1);  // no exited thread left a slot pinned
}

TEST_CASE(retire_list_frees_the_rest_when_destroyed) {
  int freed = 0;
  {
    EpochGuard pin;
    RetireList list;
    for (int i = 0; i < 40; ++i) {  // past the initial reservation: reserve_one grows it
      list.reserve_one();
      list.retire([&] { ++freed; });
    }
    CHECK_EQ(list.size(), 40u);
  }
  CHECK_EQ(freed, 40);
}

namespace {

// A published object: readers check `alive` while pinned. "Freeing" it clears `alive` and
// moves it to a graveyard deleted at the end, so a reader that still holds a freed object
// sees the violation in any build, without undefined behaviour.
struct Node {
  explicit Node(uint64_t v) : value(v), check(~v) {}
  std::atomic<bool> alive{true};
  uint64_t value;
  uint64_t check;  // ~value: a torn or reused node shows a mismatch
};

}  // namespace

STRESS_CASE(readers_never_see_a_freed_object) {
  std::atomic<Node*> current{new Node(0)};
  RetireList retired;  // the writer's
  std::vector<std::unique_ptr<Node>> graveyard;  // written by the deleters (writer thread)
  std::atomic<bool> done{false};
  std::atomic<uint64_t> reads{0}, dead_seen{0}, torn_seen{0};

  auto reader = [&] {
    uint64_t n = 0;
    while (!done.load(std::memory_order_relaxed) || n == 0) {
      EpochGuard pin;
      for (int j = 0; j < 16; ++j, ++n) {
        const Node* node = current.load(std::memory_order_acquire);
        // Spend a little time holding it, so the writer replaces it meanwhile.
        for (int spin = 0; spin < 8; ++spin) {
          if (!node->alive.load(std::memory_order_acquire)) dead_seen.fetch_add(1);
          if (node->check != ~node->value) torn_seen.fetch_add(1);
        }
      }
    }
    reads.fetch_add(n);
  };
  std::thread r1(reader), r2(reader), r3(reader);
  std::thread writer([&] {
    for (uint64_t v = 1; v <= 60000; ++v) {
      Node* fresh = new Node(v);
      retired.reserve_one();
      Node* old = current.exchange(fresh, std::memory_order_acq_rel);
      retired.retire([old, &graveyard] {
        old->alive.store(false, std::memory_order_release);
        graveyard.emplace_back(old);
      });
      if (v % 16 == 0) retired.collect();
    }
    done.store(true);
  });
  writer.join();
  r1.join();
  r2.join();
  r3.join();
  CHECK_EQ(dead_seen.load(), 0u);
  CHECK_EQ(torn_seen.load(), 0u);
  CHECK(reads.load() > 0);
  CHECK_EQ(retired.collect(), 0u);  // nobody is pinned: everything could be freed
  CHECK_EQ(graveyard.size(), 60000u);
  delete current.load();
}
