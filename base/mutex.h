// absl::Mutex as ThreadSanitizer can see it. Use exactly as absl::Mutex:
//
//   mutable Mutex mu_;
//   std::deque<Op> queue_ ABSL_GUARDED_BY(mu_);
//   ...
//   MutexLock lock(&mu_);
//   auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return !queue_.empty(); };
//   mu_.Await(absl::Condition(&ready));
//
// Why not absl::Mutex itself: Debian's Abseil is built without
// -fsanitize=thread, so in a TSan build its lock and unlock happen in code
// TSan does not see, and every access the mutex orders is reported as a race
// (and a Condition read by the unlocking thread as a race on the waiter's
// stack). In TSan builds this wrapper tells TSan of each acquire and release
// (__tsan_acquire/__tsan_release on the mutex's address), and brackets every
// evaluation of an Await condition with an acquire and a release, since
// Abseil evaluates a waiter's condition in whichever thread holds the lock. In other builds it
// is absl::Mutex with nothing added.
#ifndef MOESTREAM_BASE_MUTEX_H_
#define MOESTREAM_BASE_MUTEX_H_

#include "absl/base/config.h"
#include "absl/base/const_init.h"
#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

#ifdef ABSL_HAVE_THREAD_SANITIZER
#include <sanitizer/tsan_interface.h>
#endif

namespace moestream {

class ABSL_LOCKABLE Mutex {
 public:
  Mutex() = default;
  // For mutexes with static storage duration (no first-use race).
  explicit constexpr Mutex(absl::ConstInitType) : mu_(absl::kConstInit) {}
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() {
    mu_.Lock();
    Acquired();
  }
  void Unlock() ABSL_UNLOCK_FUNCTION() {
    Releasing();
    mu_.Unlock();
  }
  // Releases the mutex until `cond` holds, then returns with it held again.
  void Await(const absl::Condition& cond) ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) {
#ifdef ABSL_HAVE_THREAD_SANITIZER
    struct Annotated {
      Mutex* mu;
      const absl::Condition* cond;
      // Evaluated with the lock held, by the waiter or by the thread that is
      // unlocking, which both let go of the lock afterwards.
      bool operator()() const {
        mu->Acquired();
        const bool holds = cond->Eval();
        mu->Releasing();
        return holds;
      }
    } annotated{this, &cond};
    // Built before the release: whichever thread evaluates it reads it.
    const absl::Condition annotated_cond(&annotated);
    Releasing();
    mu_.Await(annotated_cond);
    Acquired();
#else
    mu_.Await(cond);
#endif
  }

 private:
  void Acquired() {
#ifdef ABSL_HAVE_THREAD_SANITIZER
    __tsan_acquire(this);
#endif
  }
  void Releasing() {
#ifdef ABSL_HAVE_THREAD_SANITIZER
    __tsan_release(this);
#endif
  }

  absl::Mutex mu_;
};

// Holds `mu` for the scope, as absl::MutexLock does.
class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

}  // namespace moestream

#endif  // MOESTREAM_BASE_MUTEX_H_
