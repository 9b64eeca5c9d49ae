#!/usr/bin/env bash
# Runs fuzz targets for a while each, on stable Rust (see README.md).
#
#   fuzz/run.sh [SECONDS] [TARGET...]      default: 10 seconds, every target
#
# New inputs go to fuzz/target/corpus/<target>/ (ignored by git); the committed seeds in
# fuzz/corpus/<target>/ are read, never written. A crash stops the run with a non-zero exit and
# leaves the input in fuzz/artifacts/<target>/. Extra cargo-fuzz options: FUZZ_BUILD_FLAGS.
set -euo pipefail
cd "$(dirname "$0")/.."

# cargo-fuzz passes nightly-only flags (-Zsanitizer=address, -Cpasses=sancov-module...):
# RUSTC_BOOTSTRAP=1 lets the stable compiler accept them.
export RUSTC_BOOTSTRAP=1

seconds="${1:-10}"
shift || true
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

# One build of every target first, so each run's time is spent fuzzing.
# shellcheck disable=SC2086
cargo fuzz build ${FUZZ_BUILD_FLAGS:-}

for t in "${targets[@]}"; do
  echo "== fuzz $t for ${seconds}s"
  mkdir -p "fuzz/target/corpus/$t"
  # shellcheck disable=SC2086
  cargo fuzz run ${FUZZ_BUILD_FLAGS:-} "$t" "fuzz/target/corpus/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 -print_final_stats=1
done
