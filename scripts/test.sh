#!/usr/bin/env bash
# The whole test suite, from nothing: installs what it needs (Debian packages, a virtualenv),
# checks style, runs every test. Extra arguments go to pytest.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/scripts/install-deps.sh"
cd "$here"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# The pytest console script (not "python -m pytest") with --import-mode=importlib keeps the
# repo root off sys.path, so the folder milter/ never shadows pymilter's "milter" module.
export HYPOTHESIS_PROFILE=${HYPOTHESIS_PROFILE:-ci}
exec .venv/bin/pytest "$@"
