#!/usr/bin/env bash
# Differential test of watchpost's alert semantics against Prometheus:
# the same series through `promtool test rules` and through an Engine
# (examples/promtool_diff.rs), compared at every evaluation minute by
# scripts/promtool_diff.py. Fails on any disagreement that is not a
# documented difference (docs/alerts.md, "Differences from Prometheus").
#
# Needs promtool (Debian's `prometheus` package, installed with apt-get when
# missing and running as root) and python3. PROMTOOL_DIFF_SEED and
# PROMTOOL_DIFF_RANDOM choose the random scenarios (default: seed 1, 16).
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET="${CARGO_TARGET_DIR:-target}"
OUT="$TARGET/promtool_diff"
LIB_TAG=promtool_diff
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

missing=()
command -v promtool >/dev/null || missing+=(prometheus)
command -v python3 >/dev/null || missing+=(python3)
install_or_skip "differential test" "${missing[@]}"
say "$(promtool --version 2>&1 | head -1)"

# the test build already compiled the example with these features
cargo build -q --all-features --example promtool_diff
rm -rf "$OUT"
python3 scripts/promtool_diff.py "$TARGET/debug/examples/promtool_diff" "$OUT"
say "done; rule and test files in $OUT"
