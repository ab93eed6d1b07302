#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (default 60 s each) and files whatever crashes or
# hangs into tests/corpus/<target>/, where `cargo test --test corpus` replays it for good.
#
#   fuzz/run.sh            # 60 s per target
#   fuzz/run.sh 300 probe  # 300 s, one target
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). The machine's toolchain is stable, so the
# nightly-only flags cargo-fuzz passes (sanitizers, coverage) are unlocked with
# RUSTC_BOOTSTRAP=1.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(request recipe probe render renderer_answer)

# Seeds: the worker's own sample images, made by the binary (nothing committed), and the
# hand-made cases of the regression corpus.
mkdir -p corpus
if [ ! -d corpus/.seeded ]; then
  cargo run -q --manifest-path ../Cargo.toml -- samples --out corpus/.samples >/dev/null
  for t in probe render; do mkdir -p "corpus/$t"; cp corpus/.samples/* "corpus/$t/"; done
  mkdir -p corpus/request corpus/recipe corpus/renderer_answer
  cp ../tests/corpus/request/*.cbor corpus/request/ 2>/dev/null || true
  cp ../tests/corpus/probe/* corpus/probe/ 2>/dev/null || true
  mkdir -p corpus/.seeded
fi
export RUSTC_BOOTSTRAP=1

status=0
for t in "${targets[@]}"; do
  echo "== $t ($seconds s)"
  mkdir -p "corpus/$t" "artifacts/$t"
  log=$(mktemp)
  if ! cargo fuzz run -O "$t" "corpus/$t" -- \
      -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=20 -max_len=1048576 \
      -artifact_prefix="artifacts/$t/" 2>&1 | tee "$log" | grep -E "^(Done|#[0-9]+ +DONE)|ERROR|SUMMARY"; then
    status=1
  fi
  grep -E "^Done [0-9]+ runs" "$log" || true
  for found in "artifacts/$t"/*; do
    [ -e "$found" ] || continue
    mkdir -p "../tests/corpus/$t"
    cp "$found" "../tests/corpus/$t/"
    echo "   filed $(basename "$found") into tests/corpus/$t/"
    status=1
  done
  rm -f "$log"
done
exit $status
