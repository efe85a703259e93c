#!/usr/bin/env bash
# The GPU check (docs/benchmarks.md, "GPU check"): installs what this machine lacks from the
# wheels `make gpu-wheels` prepared (gpu-wheels/, or $DDS_GPU_WHEELS), nothing from the
# network, then runs benchmarks/gpu_check.py's steps, writing OUTDIR/gpu_check.json and .md.
#
#   bash benchmarks/gpu_check.sh OUTDIR [--cpu] [--only STEP ...] [--workdir DIR] [--budget S]
#
# Python: $PYTHON, else the repository's .venv when there is one, else python3.
set -euo pipefail
if [ $# -lt 1 ] || [[ $1 == -* ]]; then
  echo "usage: $0 OUTDIR [--cpu] [--only STEP ...] [--workdir DIR] [--budget SECONDS]" >&2
  exit 2
fi
mkdir -p "$1"
OUTDIR=$(cd "$1" && pwd)
shift
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
WHEELS=${DDS_GPU_WHEELS:-gpu-wheels}

MISSING=$("$PYTHON" benchmarks/gpu_check.py missing "$WHEELS")
if [ -n "$MISSING" ]; then
  # a folder of its own, first on the path: the machine's own packages stay as they are
  SITE=$(mktemp -d "${TMPDIR:-/tmp}/dds-gpu-check-site.XXXXXX")
  trap 'rm -rf "$SITE"' EXIT
  echo "installing $(wc -l <<<"$MISSING") wheels from $WHEELS into $SITE"
  mapfile -t WHEEL_FILES <<<"$MISSING"
  "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-index --no-deps --target "$SITE" "${WHEEL_FILES[@]}"
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}" PATH="$SITE/bin:$PATH"
fi
# the project itself from its source tree: nothing to build or download
export PYTHONPATH="$REPO/src${PYTHONPATH:+:$PYTHONPATH}"
status=0
"$PYTHON" benchmarks/gpu_check.py run "$OUTDIR" "$@" || status=$?
exit $status
