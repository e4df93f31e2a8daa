# Shared by the interop scripts; source it after `set -euo pipefail` and
# `cd` to the repository root, with LIB_TAG set to the script's tag:
#
#   LIB_TAG=interop
#   source scripts/lib.sh
#
# It gives `say`/`fail` (lines prefixed with the tag and the seconds since
# sourcing), `install_or_skip` (Debian packages through apt-get, or a skip
# when the mirror is unreachable), `free_port`, `wait_for`, and `start_bg`
# (a background process on loopback, killed and reaped when the script exits).

started=$SECONDS
PIDS=()

# say TEXT...: one line on stderr, prefixed with the tag and the elapsed seconds.
say() { printf '[%s %3ds] %s\n' "$LIB_TAG" "$((SECONDS - started))" "$*" >&2; }

# fail TEXT...: says FAIL and exits 1.
fail() {
  say "FAIL: $*"
  exit 1
}

# install_or_skip WHAT PACKAGE...: installs the Debian packages (each once, in
# the order given) with apt-get; needs root. If apt-get cannot reach the
# package mirror, says that WHAT is not run and exits 0. Nothing to install:
# returns at once.
install_or_skip() {
  local what=$1 packages log
  shift
  (($#)) || return 0
  packages=$(printf '%s\n' "$@" | awk '!seen[$0]++' | tr '\n' ' ')
  packages=${packages% }
  say "installing: $packages"
  [[ $(id -u) == 0 ]] || fail "need root to install $packages (or install them first)"
  log=$(mktemp)
  if ! timeout 120 apt-get update -qq >"$log" 2>&1 \
    || grep -qE '^(E|W): (Failed to fetch|Some index files failed)' "$log"; then
    cat "$log" >&2
    say "SKIP: apt-get cannot reach the package mirror; $what not run"
    exit 0
  fi
  # shellcheck disable=SC2086 # one word per package
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends \
    $packages >"$log" 2>&1 || {
    cat "$log" >&2
    fail "apt-get install $packages"
  }
}

# free_port: a free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_for SECONDS DESCRIPTION COMMAND...: retries COMMAND every 0.25 s;
# fails once SECONDS have passed.
wait_for() {
  local limit=$1 what=$2 deadline=$((SECONDS + $1))
  shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "timed out after ${limit}s waiting for $what"
    sleep 0.25
  done
}

# start_bg LOG COMMAND...: runs COMMAND in the background with stdout and
# stderr to LOG, and remembers it for stop_bg; its pid is in $BG_PID.
start_bg() {
  local log=$1
  shift
  "$@" >"$log" 2>&1 &
  BG_PID=$!
  PIDS+=("$BG_PID")
}

# stop_bg: kills every process start_bg started (or that was added to PIDS)
# and reaps them. Scripts call it from their EXIT trap.
stop_bg() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
}
