#!/usr/bin/env bash
# The GGUF reader's fuzz target alone, for SECONDS: tests/fuzz/run_fuzzers.sh
# SECONDS gguf_fuzzer (kept for existing callers).
set -euo pipefail
exec "$(dirname "$0")/run_fuzzers.sh" "${1:-}" gguf_fuzzer
