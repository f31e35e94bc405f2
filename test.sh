#!/usr/bin/env bash
# Run the test suite: set up (idempotent), lint, type-check, then pytest with the given
# arguments (default: the whole suite, -q). Exits with pytest's code; a clean test run still
# fails when ruff or mypy found problems, and "no tests collected" (5) is a failure.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"

bash scripts/setup.sh || { echo "test.sh: setup failed" >&2; exit 1; }

echo "test.sh: ruff check ."
.venv/bin/ruff check .
ruff_status=$?

echo "test.sh: mypy syncfs tracker"
.venv/bin/mypy syncfs tracker
mypy_status=$?

if (($# == 0)); then set -- -q; fi
echo "test.sh: pytest $*"
.venv/bin/pytest "$@" </dev/null
status=$?

if ((status == 5)); then
    echo "test.sh: pytest collected no tests: failing" >&2
elif ((status == 0 && ruff_status != 0)); then
    echo "test.sh: tests passed but ruff found problems: failing" >&2
    status=1
elif ((status == 0 && mypy_status != 0)); then
    echo "test.sh: tests passed but mypy found problems: failing" >&2
    status=1
fi
exit "$status"
