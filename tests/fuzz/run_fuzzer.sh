#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded time over a scratch copy of its seed corpus (the
# committed corpus stays untouched), as the ctest tests labelled `fuzz` do. Exits non-zero on
# any crash, sanitizer report, leak, timeout (one input over 10 s) or OOM (over 2 GiB); the
# input that did it is kept under ARTIFACT_DIR.
#   tests/fuzz/run_fuzzer.sh BINARY CORPUS_DIR SECONDS [DICT] [ARTIFACT_DIR] [libFuzzer flags...]
set -euo pipefail
(($# >= 3)) || { echo "usage: $0 BINARY CORPUS_DIR SECONDS [DICT] [ARTIFACT_DIR] [flags...]" >&2; exit 2; }
bin=$1 corpus=$2 seconds=$3 dict=${4:-} artifacts=${5:-}
shift $(($# < 5 ? $# : 5))
[[ -x "$bin" ]] || { echo "run_fuzzer: $bin is not built" >&2; exit 1; }
[[ -d "$corpus" ]] || { echo "run_fuzzer: no corpus directory $corpus" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/tipperary-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp -R "$corpus" "$work/corpus"
artifacts=${artifacts:-$work}
mkdir -p "$artifacts"
name=$(basename "$bin")
flags=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
       -artifact_prefix="$artifacts/$name-")
[[ -n "$dict" ]] && flags+=(-dict="$dict")
# Sanitizer reports are fatal; leaks are checked (libFuzzer's -detect_leaks is on by default).
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
echo "run_fuzzer: $name for ${seconds}s over a copy of $corpus ($(ls "$corpus" | wc -l) inputs)"
exec_rc=0
"$bin" "${flags[@]}" "$@" "$work/corpus" || exec_rc=$?
if ((exec_rc != 0)); then
  echo "run_fuzzer: $name failed (exit $exec_rc); the input is under $artifacts/$name-*" >&2
fi
exit "$exec_rc"
