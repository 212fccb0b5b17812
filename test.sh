#!/usr/bin/env bash
# Runs the whole moestream test suite: installs missing packages, builds, runs CTest.
#   ./test.sh                      Release build in ./build, every test (gpu tests skip without a GPU)
#   ./test.sh --sanitize address   ASan+UBSan build in ./build-asan (CUDA and benchmarks off)
#   ./test.sh --sanitize thread    TSan build in ./build-tsan: the expert cache suite (live copy-engine
#                                  stress included), the CPU backend's stream/event/thread tests, and
#                                  the server's request queue under concurrent clients
#   extra arguments after -- go to ctest (e.g. ./test.sh -- -R gguf)
set -euo pipefail
cd "$(dirname "$0")"

sanitize=""
ctest_args=()
while (($#)); do
  case "$1" in
    --sanitize) sanitize="$2"; shift 2 ;;
    --) shift; ctest_args=("$@"); break ;;
    *) echo "test.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done

./setup.sh --deps-only
jobs=$(nproc)
case "$sanitize" in
  "")
    dir=build
    cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null ;;
  address)
    dir=build-asan
    cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMOESTREAM_SANITIZE=address \
      -DMOESTREAM_CUDA=OFF -DMOESTREAM_BENCH=OFF >/dev/null ;;
  thread)
    dir=build-tsan
    cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMOESTREAM_SANITIZE=thread \
      -DMOESTREAM_CUDA=OFF -DMOESTREAM_BENCH=OFF >/dev/null ;;
  *) echo "test.sh: --sanitize must be address or thread" >&2; exit 2 ;;
esac
if [[ "$sanitize" == thread ]]; then
  # The concurrency tests: the live expert cache over the CPU backend's copy
  # engine, the CPU backend's streams, events and thread pool, and the
  # server's request queue (its scheduler runs under TSan too: build
  # server_tests there, a longer build).
  cmake --build "$dir" -j "$jobs" --target cache_tests kernels_tests server_queue_tests
else
  cmake --build "$dir" -j "$jobs"
fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}
if [[ "$sanitize" == thread ]]; then
  "$dir/tests/cache_tests" --gtest_brief=1
  "$dir/tests/kernels_tests" --gtest_brief=1 --gtest_filter="${TSAN_FILTER:-*Stream*:*Event*:*Copy*:*Link*:*Thread*:*Pool*:*Batch*}"
  "$dir/tests/server_queue_tests" --gtest_brief=1
else
  ctest --test-dir "$dir" --output-on-failure -j "$jobs" "${ctest_args[@]}"
fi
