#!/usr/bin/env bash
# Profiles of the performance targets: for each target, a `perf` profile of
# its criterion bench and the bench's figures beside their in-run baselines.
#
#   scripts/profile_targets.sh OUT_DIR [target ...]
#
# Targets (all of them when none is named):
#   record             hot_path  record/watchpost, record/watchpost_recorder
#   ingest_collection  ingest    ingest_collection/1000 (1 000 gauges, default detector)
#   ingest_records     ingest    ingest_records/10000_samples
#   dashboard          ingest    dashboard_snapshot/{typed,json}/1000
#   exposition         export    exposition/watchpost_prometheus_0.0.4/10000
#   counters           hot_path  counter_inc_contended/watchpost
#   memory             the memory test's printed bytes per series
#
# For each target it writes
#   OUT_DIR/<target>.txt        `perf report --stdio --no-children` top entries
#                               (self %, symbol; entries of at least
#                               PERCENT_LIMIT %) of the bench run under
#                               `perf record -g` with criterion's
#                               `--bench --profile-time PROFILE_TIME <filter>`
#                               (one section per profiled bench)
#   OUT_DIR/<target>.bench.txt  a short criterion run (`--warm-up-time 1
#                               --measurement-time 3`) of the target and of
#                               the baselines beside it in its group
# and, for `memory`, OUT_DIR/memory.bench.txt with the printed figures of
# `cargo test --profile bench --all-features --test memory` (the bench
# profile, so it reuses the benches' build).
#
# The benches are built once in release (`cargo bench --all-features
# --no-run`) in CARGO_TARGET_DIR (default: target). Settings from the
# environment: PROFILE_TIME (seconds per profiled bench, default 5),
# PERCENT_LIMIT (default 2), KEEP_PERF_DATA=1 keeps OUT_DIR/<name>.perf.data
# for `perf report -i` (call graphs, annotation).
#
# The profile covers the whole bench process: the setup of the binary's
# other groups runs too (a few % of the samples in `ingest`), and with LTO
# much is inlined into its caller, so read a symbol as "this and what it
# inlines".
#
# Needs `perf` (Debian: linux-perf) allowed to profile your own processes
# (kernel.perf_event_paranoid <= 2), and jq. Run it on an idle machine, or
# read the figures against the baselines measured in the same run. A bench
# that an older tree does not have is reported as missing, not fatal, so the
# same script profiles an earlier commit's checkout too.
set -euo pipefail

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
    exit "${1:-2}"
}

[[ $# -ge 1 ]] || usage
[[ $1 == -h || $1 == --help ]] && usage 0
out=$1
shift
all=(record ingest_collection ingest_records dashboard exposition counters memory)
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=("${all[@]}")

profile_time=${PROFILE_TIME:-5}
percent_limit=${PERCENT_LIMIT:-2}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mkdir -p "$out"
out=$(cd "$out" && pwd)

for tool in perf jq cargo; do
    command -v "$tool" >/dev/null || {
        echo "profile_targets: $tool is not installed" >&2
        exit 1
    }
done

# target -> bench binary, the criterion filter of the short run (target and
# baselines), and the exact bench ids profiled (space separated).
bench_of() {
    case $1 in
    record | counters) echo hot_path ;;
    ingest_collection | ingest_records | dashboard) echo ingest ;;
    exposition) echo export ;;
    memory) echo "" ;;
    *)
        echo "profile_targets: unknown target '$1' (known: ${all[*]})" >&2
        exit 2
        ;;
    esac
}
figure_filter() {
    case $1 in
    record) echo '^record/' ;;
    counters) echo '^counter_inc' ;;
    ingest_collection) echo '^ingest_collection/(no_detection/)?1000$' ;;
    ingest_records) echo '^ingest_records/' ;;
    dashboard) echo '^dashboard_snapshot/[a-z_]+/1000$' ;;
    exposition) echo '^exposition/' ;;
    esac
}
profiled() {
    case $1 in
    record) echo 'record/watchpost record/watchpost_recorder' ;;
    counters) echo 'counter_inc_contended/watchpost' ;;
    ingest_collection) echo 'ingest_collection/1000' ;;
    ingest_records) echo 'ingest_records/10000_samples' ;;
    dashboard) echo 'dashboard_snapshot/typed/1000 dashboard_snapshot/json/1000' ;;
    exposition) echo 'exposition/watchpost_prometheus_0.0.4/10000' ;;
    esac
}

# Build the benches the targets need, once, and find their binaries.
declare -A binary=() listing=()
benches=()
for t in "${targets[@]}"; do
    b=$(bench_of "$t")
    [[ -z $b || -v binary[$b] ]] && continue
    binary[$b]=""
    benches+=(--bench "$b")
done
if [[ ${#benches[@]} -gt 0 ]]; then
    echo "profile_targets: building ${benches[*]} (release, all features)" >&2
    while IFS=$'\t' read -r name exe; do
        binary[$name]=$exe
    done < <(cargo bench --all-features --no-run "${benches[@]}" --message-format=json |
        jq -r 'select(.reason == "compiler-artifact" and .executable != null
                      and (.target.kind | index("bench")))
               | [.target.name, .executable] | @tsv')
fi

# shellcheck disable=SC2001 # a bracket expression, not a fixed string
escape() { sed 's/[][\\.^$*+?(){}|]/\\&/g' <<<"$1"; }

for t in "${targets[@]}"; do
    b=$(bench_of "$t")
    if [[ -z $b ]]; then
        echo "profile_targets: memory test" >&2
        log=$(mktemp)
        status=0
        cargo test --profile bench --all-features --test memory -- --nocapture >"$log" 2>&1 ||
            status=$?
        {
            echo "# cargo test --profile bench --all-features --test memory -- --nocapture"
            echo "# $(git rev-parse --short HEAD 2>/dev/null || echo '?') $(date -u +%FT%TZ), load: $(cut -d' ' -f1-3 /proc/loadavg)"
            if [[ $status == 0 ]]; then
                grep -E 'bytes|^test |test result' "$log"
            else
                echo "(the memory test failed with status $status)"
                cat "$log"
            fi
        } >"$out/memory.bench.txt"
        rm -f "$log"
        continue
    fi
    exe=${binary[$b]}
    [[ -x $exe ]] || {
        echo "profile_targets: no binary for bench $b" >&2
        exit 1
    }
    header="# $(git rev-parse --short HEAD 2>/dev/null || echo '?') $(date -u +%FT%TZ), load: $(cut -d' ' -f1-3 /proc/loadavg)"

    echo "profile_targets: $t: criterion figures" >&2
    {
        echo "# $(basename "$exe") --bench --warm-up-time 1 --measurement-time 3 --noplot --discard-baseline '$(figure_filter "$t")'"
        echo "$header"
        # the figures and outlier counts; not the progress lines, nor the
        # change against whatever run criterion saved last in this target dir
        "$exe" --bench --warm-up-time 1 --measurement-time 3 --noplot --discard-baseline \
            "$(figure_filter "$t")" 2>&1 |
            grep -vE '^Benchmarking |^ +[0-9]+ \([0-9.]+%\) |^ +change:|^(Performance has|No change in|Change within)' ||
            echo "(the bench run failed)"
    } >"$out/$t.bench.txt"

    : >"$out/$t.txt"
    for id in $(profiled "$t"); do
        echo "profile_targets: $t: perf record of $id" >&2
        data="$out/${id//\//_}.perf.data"
        filter="^$(escape "$id")\$"
        {
            echo "## $id"
            echo "# perf record -g -- $(basename "$exe") --bench --profile-time $profile_time '$filter'"
            echo "$header"
        } >>"$out/$t.txt"
        # (listing runs each group's setup, so it is done once per binary)
        [[ -v listing[$b] ]] || listing[$b]=$("$exe" --bench --list 2>/dev/null)
        if ! grep -qxF "$id: benchmark" <<<"${listing[$b]}"; then
            echo "(no bench $id in this tree)" >>"$out/$t.txt"
            echo >>"$out/$t.txt"
            continue
        fi
        if ! perf record -q -g -o "$data" -- "$exe" --bench --profile-time "$profile_time" \
            "$filter" >/dev/null 2>&1; then
            echo "(perf record failed: is perf allowed here? see kernel.perf_event_paranoid)" >>"$out/$t.txt"
            continue
        fi
        # self %, thread, shared object, symbol (the bench's thread and the
        # engine's worker apart); no call chains, no perf's comments
        perf report -i "$data" --stdio --no-children --percent-limit "$percent_limit" \
            --fields overhead,comm,dso,sym -g none 2>/dev/null |
            awk '/^# Samples/ { print; print "#   self %  thread  object  symbol" }
                 /^[^#]/ && NF { sub(/ +$/, ""); print }' >>"$out/$t.txt"
        echo >>"$out/$t.txt"
        [[ ${KEEP_PERF_DATA:-0} == 1 ]] || rm -f "$data"
    done
done
echo "profile_targets: wrote $out" >&2
