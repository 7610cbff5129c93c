#!/usr/bin/env bash
# Benchmarks a pull request's base and head on one runner, interleaved, and compares them.
#
#   .github/scripts/bench-interleaved.sh [--base REV] [--rounds N] [--out DIR] [--quick] [SUITE...]
#
# The base is the merge-base of REV (default: origin/main) and HEAD, checked out as a git
# worktree and built in its own target folder, so switching sides never rebuilds anything.
# For every round and suite it runs `cargo xtask bench --suite S --history H` once on each
# side, alternating which side goes first (ABBA), so slow drift of the machine (thermal,
# noisy neighbours) hits both sides alike. Both sides append to one history folder H, the
# head tree's default one, so `cargo xtask compare`, `summary` and `report` run in the head
# tree see both. The last round always runs base then head: the head's latest run then has
# the base's as its previous run of the suite.
#
# Without SUITE arguments it runs every suite of the head tree (scenarios/suites/*.toml)
# except `gpu`, which needs the GPU runner. A suite that the base cannot run (it does not
# exist there yet, or the base's xtask predates --history) is benchmarked on the head alone
# and reported as such.
#
# A run's id is the name of the file it adds to the history (<run-id>.parquet).
#
# Writes to DIR (default: $RUNNER_TEMP/perflab, else target/perflab/ci):
#   runs.tsv          round, suite, side (base|head), run id: every run in order
#   last-head.tsv     suite, run id of the head's last run: what the summary describes
#   compare-S.json    `cargo xtask compare --json` of the last round's base and head runs
#   compare-S-rN.txt  the comparison table of round N
#   base-missing.txt  suites the base could not run (absent when none)
#   base-sha, head-sha
set -euo pipefail

usage() {
  sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

base_rev="origin/main"
rounds=2
out=""
quick=()
suites=()
while (($#)); do
  case "$1" in
    --base) base_rev="${2:?--base needs a revision}"; shift 2 ;;
    --rounds) rounds="${2:?--rounds needs a number}"; shift 2 ;;
    --out) out="${2:?--out needs a folder}"; shift 2 ;;
    --quick) quick=(--quick); shift ;;
    -h | --help) usage ;;
    -*) echo "unknown option: $1" >&2; usage ;;
    *) suites+=("$1"); shift ;;
  esac
done
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "--rounds must be a positive integer, got: $rounds" >&2; exit 2; }

root="$(git rev-parse --show-toplevel)"
cd "$root"
head_target="${CARGO_TARGET_DIR:-$root/target}"
history="$head_target/perflab/history"
if [[ -z "$out" ]]; then
  if [[ -n "${RUNNER_TEMP:-}" ]]; then out="$RUNNER_TEMP/perflab"; else out="$head_target/perflab/ci"; fi
fi
mkdir -p "$out" "$history"

base_sha="$(git merge-base "$base_rev" HEAD)"
head_sha="$(git rev-parse HEAD)"
printf '%s\n' "$base_sha" >"$out/base-sha"
printf '%s\n' "$head_sha" >"$out/head-sha"
echo "base: $base_sha (merge-base of $base_rev and HEAD)"
echo "head: $head_sha"

base_dir="${RUNNER_TEMP:-${TMPDIR:-/tmp}}/perflab-base-${base_sha:0:12}"
if [[ ! -d "$base_dir" ]]; then
  git worktree add --detach "$base_dir" "$base_sha"
fi
cleanup() { git worktree remove --force "$base_dir" 2>/dev/null || true; }
trap cleanup EXIT
base_target="$base_dir/target"

if ((${#suites[@]} == 0)); then
  for file in scenarios/suites/*.toml; do
    name="$(basename "$file" .toml)"
    [[ "$name" == gpu ]] || suites+=("$name")
  done
fi
((${#suites[@]})) || { echo "no suites to run" >&2; exit 2; }
echo "suites: ${suites[*]}; rounds: $rounds"

# The runs in the history: one `<run-id>.parquet` file each.
list_runs() {
  find "$history" -maxdepth 1 -name '*.parquet' -printf '%f\n' | sed 's/\.parquet$//' | sort
}

# One benchmark run on one side; prints its run id: the one run that appeared in the history.
# What the benchmark prints goes to stderr, for the log.
bench() {
  local side="$1" suite="$2" dir target before new
  if [[ "$side" == base ]]; then dir="$base_dir" target="$base_target"; else dir="$root" target="$head_target"; fi
  before="$(list_runs)"
  echo "::group::$side: cargo xtask bench --suite $suite" >&2
  if ! (cd "$dir" && CARGO_TARGET_DIR="$target" cargo xtask bench --suite "$suite" --history "$history" "${quick[@]}") >&2; then
    echo "::endgroup::" >&2
    return 1
  fi
  echo "::endgroup::" >&2
  new="$(comm -13 <(printf '%s\n' "$before") <(list_runs))"
  if [[ -z "$new" || "$new" == *$'\n'* ]]; then
    echo "expected one new run in $history after $side/$suite, found: ${new:-none}" >&2
    return 1
  fi
  printf '%s\n' "$new"
}

: >"$out/runs.tsv"
: >"$out/last-head.tsv"
rm -f "$out/base-missing.txt"
declare -A base_ok last_base last_head
for suite in "${suites[@]}"; do base_ok[$suite]=1; done

for ((round = 1; round <= rounds; round++)); do
  # The last round runs base first; earlier rounds alternate backwards from it (ABBA).
  if ((((rounds - round) % 2) == 0)); then order=(base head); else order=(head base); fi
  for suite in "${suites[@]}"; do
    for side in "${order[@]}"; do
      if [[ "$side" == base && "${base_ok[$suite]}" != 1 ]]; then continue; fi
      if id="$(bench "$side" "$suite")"; then
        printf '%s\t%s\t%s\t%s\n' "$round" "$suite" "$side" "$id" >>"$out/runs.tsv"
        if [[ "$side" == base ]]; then last_base[$suite]="$id"; else last_head[$suite]="$id"; fi
      elif [[ "$side" == base ]]; then
        echo "::warning::the base ($base_sha) could not run suite $suite; the head is measured alone"
        base_ok[$suite]=0
        unset 'last_base[$suite]'
        printf '%s\n' "$suite" >>"$out/base-missing.txt"
      else
        echo "::error::the head could not run suite $suite" >&2
        exit 1
      fi
    done
    if [[ -n "${last_base[$suite]:-}" && -n "${last_head[$suite]:-}" ]]; then
      echo "round $round, $suite: base ${last_base[$suite]} vs head ${last_head[$suite]}"
      cargo xtask compare --base "${last_base[$suite]}" --head "${last_head[$suite]}" \
        | tee "$out/compare-$suite-r$round.txt"
    fi
  done
done

for suite in "${suites[@]}"; do
  printf '%s\t%s\n' "$suite" "${last_head[$suite]}" >>"$out/last-head.tsv"
  if [[ -n "${last_base[$suite]:-}" ]]; then
    cargo xtask compare --base "${last_base[$suite]}" --head "${last_head[$suite]}" --json \
      | sed -n '/^{/,/^}/p' >"$out/compare-$suite.json"
  fi
done
echo "runs: $out/runs.tsv"
