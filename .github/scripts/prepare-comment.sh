#!/usr/bin/env bash
# Prepares the sticky PR comment of a finished "Benchmarks" run, in the workflow_run
# workflow (which has write permission and runs the default branch's code, never the PR's).
#
#   .github/scripts/prepare-comment.sh ARTIFACTS_DIR OUT_FILE
#
# ARTIFACTS_DIR holds the downloaded artifacts of that run, one folder each:
#   perflab-summary/      summary.md, pr-number, head-sha  (the CPU job; required)
#   perflab-gpu-summary/  summary.md                       (the GPU job; optional)
# Their content comes from the pull request's run, so it is untrusted: the PR number must be
# a plain number, and that pull request's head must still be the commit the run measured
# (RUN_HEAD_SHA, from the workflow_run event), so a PR can only ever comment on itself.
# Writes the comment's markdown to OUT_FILE and `pr=N` (or `skip=true` when the PR has moved
# on to a newer commit, whose own run will comment) to $GITHUB_OUTPUT.
#
# Environment: RUN_HEAD_SHA, GITHUB_REPOSITORY, GH_TOKEN (for `gh api`), GITHUB_OUTPUT.
set -euo pipefail

(($# == 2)) || { sed -n '4,5p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
artifacts="$1"
out_file="$2"
: "${RUN_HEAD_SHA:?the head commit of the benchmark run}"
: "${GITHUB_REPOSITORY:?owner/name}"
output="${GITHUB_OUTPUT:-/dev/stdout}"

cpu="$artifacts/perflab-summary"
gpu="$artifacts/perflab-gpu-summary"
for f in summary.md pr-number head-sha; do
  [[ -f "$cpu/$f" && ! -L "$cpu/$f" ]] || { echo "::error::artifact perflab-summary has no $f" >&2; exit 1; }
done

pr="$(head -c 32 "$cpu/pr-number" | tr -d '[:space:]')"
[[ "$pr" =~ ^[1-9][0-9]{0,9}$ ]] || { echo "::error::pr-number is not a pull request number" >&2; exit 1; }
artifact_sha="$(head -c 64 "$cpu/head-sha" | tr -d '[:space:]')"
if [[ "$artifact_sha" != "$RUN_HEAD_SHA" ]]; then
  echo "::error::the artifact's head-sha does not match the run's head commit $RUN_HEAD_SHA" >&2
  exit 1
fi

pr_head="$(gh api "repos/$GITHUB_REPOSITORY/pulls/$pr" --jq '.head.sha')"
if [[ "$pr_head" != "$RUN_HEAD_SHA" ]]; then
  echo "pull request #$pr is now at $pr_head, not at the measured $RUN_HEAD_SHA: its newer run comments"
  echo "skip=true" >>"$output"
  exit 0
fi

{
  cat "$cpu/summary.md"
  if [[ -f "$gpu/summary.md" && ! -L "$gpu/summary.md" ]]; then
    printf '\n\n### GPU runner\n\n'
    cat "$gpu/summary.md"
  fi
} >"$out_file"
echo "pr=$pr" >>"$output"
echo "skip=false" >>"$output"
echo "comment for #$pr: $(wc -c <"$out_file") bytes"
