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
started=$SECONDS
say() { printf '[promtool_diff %3ds] %s\n' "$((SECONDS - started))" "$*" >&2; }

missing=()
command -v promtool >/dev/null || missing+=(prometheus)
command -v python3 >/dev/null || missing+=(python3)
if ((${#missing[@]})); then
  say "installing: ${missing[*]}"
  [[ $(id -u) == 0 ]] || { say "FAIL: need root to install ${missing[*]} (or install them first)"; exit 1; }
  log=$(mktemp)
  if ! timeout 120 apt-get update -qq >"$log" 2>&1 \
    || grep -qE '^(E|W): (Failed to fetch|Some index files failed)' "$log"; then
    cat "$log" >&2
    say "SKIP: apt-get cannot reach the package mirror; differential test not run"
    exit 0
  fi
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >"$log" 2>&1 || { cat "$log" >&2; say "FAIL: apt-get install ${missing[*]}"; exit 1; }
fi
say "$(promtool --version 2>&1 | head -1)"

# the test build already compiled the example with these features
cargo build -q --all-features --example promtool_diff
rm -rf "$OUT"
python3 scripts/promtool_diff.py "$TARGET/debug/examples/promtool_diff" "$OUT"
say "done; rule and test files in $OUT"
