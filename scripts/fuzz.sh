#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for SECONDS each, JOBS at a
# time, and prints libFuzzer's closing statistics per target.
#
#   scripts/fuzz.sh 600            # every target, 10 minutes each
#   scripts/fuzz.sh 60 invite      # one target, one minute
#
# Needs cargo-fuzz (installed here if missing) and a toolchain that accepts
# -Z flags: the nightly toolchain if rustup has one, else stable with
# RUSTC_BOOTSTRAP=1. Crashes land in crates/alcove-fuzz/artifacts/<target>/;
# the grown corpus in crates/alcove-fuzz/corpus/<target>/ (not committed).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
shift || true
all=(sealed_envelope ratchet_message prekey_bundle invite content stored_records keylog_proofs pqxdh practice groups)
targets=("${@:-${all[@]}}")
[ "$#" -eq 0 ] && targets=("${all[@]}")
jobs="${JOBS:-2}"

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  fuzz=(cargo +nightly fuzz)
else
  export RUSTC_BOOTSTRAP=1
  fuzz=(cargo fuzz)
fi
python3 scripts/fuzz-seeds.py
dir=crates/alcove-fuzz
"${fuzz[@]}" build --fuzz-dir "$dir" -O >/dev/null
mkdir -p "$dir/logs"

run() {
  local t="$1"
  mkdir -p "$dir/corpus/$t"
  local rc=0
  "${fuzz[@]}" run --fuzz-dir "$dir" -O "$t" "$dir/corpus/$t" "$dir/seeds/$t" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1 \
    >"$dir/logs/$t.log" 2>&1 || rc=$?
  local done_line
  done_line=$(grep -E '^#[0-9]+\s+DONE' "$dir/logs/$t.log" | tail -1 || true)
  echo "$t: exit $rc; ${done_line:-no DONE line, see $dir/logs/$t.log}"
}

status=0
running=0
for t in "${targets[@]}"; do
  run "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || status=1
    running=$((running - 1))
  fi
done
while [ "$running" -gt 0 ]; do
  wait -n || status=1
  running=$((running - 1))
done
exit "$status"
