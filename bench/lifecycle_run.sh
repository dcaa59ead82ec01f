#!/bin/sh
# One fresh `mlops run --use-case churn` of the code in CHECKOUT (default: this one), in a new
# MLOPS_HOME and DAGSTER_HOME, with this checkout's virtualenv; the gateway it starts is stopped
# after. With LANDING_FILE, that file is the landing data (e.g. 1M rows made once by
# `mlops generate --rows 1000000`) instead of the demo's generated 7,043 rows.
#   bench/lifecycle_run.sh [CHECKOUT [LANDING_FILE]]     (used by bench/paired.py)
set -u
bench=$(cd "$(dirname "$0")" && pwd)
venv="$bench/../.venv/bin"
code=$(cd "${1:-$bench/..}" && pwd)
landing=${2:-}
home=$(mktemp -d "${TMPDIR:-/tmp}/mlops-bench.XXXXXX")
mkdir -p "$home/dagster"
cp "$code/dagster.yaml" "$home/dagster/"
export MLOPS_HOME="$home/mlops" DAGSTER_HOME="$home/dagster" PYTHONPATH="$code" MLOPS_TARGET=local
unset MLOPS_CONFIG
if [ -n "$landing" ]; then
  mkdir -p "$MLOPS_HOME/landing/churn"
  cp "$landing" "$MLOPS_HOME/landing/churn/"
fi
cd "$code"
"$venv/mlops" run --use-case churn >"$home/run.log" 2>&1
status=$?
"$venv/mlops" stop >/dev/null 2>&1
[ "$status" -eq 0 ] || tail -20 "$home/run.log" >&2
rm -rf "$home"
exit "$status"
