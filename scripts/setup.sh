#!/usr/bin/env bash
# One-time set-up after `npm install`: the pod harness venv, the Temporal CLI (dev server) and versitygw (S3 tests).
# Idempotent and cached: reruns skip what is already in place. `npm test` runs it first (pretest) and
# `start-workflow --sandbox` with --no-test-tools (no versitygw), so a fresh clone needs only `npm install`.
set -euo pipefail
cd "$(dirname "$0")/.."
test_tools=1
[ "${1:-}" = "--no-test-tools" ] && test_tools=0

if ! command -v sshd >/dev/null 2>&1 && [ ! -x /usr/sbin/sshd ]; then
  echo "error: sshd not found. The sandbox runs every pod as a real OpenSSH server:" >&2
  echo "       install the Debian package openssh-server (sudo apt-get install openssh-server)." >&2
  exit 1
fi

# Python venv for the pod harness (CodeCarbon 2.7.1, huggingface_hub with the hf CLI, pytest) and the analysis
# (numpy, scipy, statsmodels, matplotlib).
stamp=.venv/.requirements.sha256
want=$(cat pod/requirements.txt pod/requirements-dev.txt analysis/requirements.txt | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: creating .venv for the pod harness"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r pod/requirements-dev.txt -r analysis/requirements.txt
  echo "$want" > "$stamp"
fi
.venv/bin/python -W ignore::FutureWarning -c "import codecarbon; assert codecarbon.__version__ == '2.7.1', codecarbon.__version__"

need_go() {
  if ! command -v go >/dev/null 2>&1; then
    echo "error: Go not found: it builds $1 (go install, once). Install Go >= 1.25 (Debian: apt-get install golang-go," >&2
    echo "       or https://go.dev/dl), or set ${2} to a binary you already have." >&2
    exit 1
  fi
}

# Temporal CLI: v1.5.1 is the newest tag `go install` accepts (later tags carry replace directives).
if [ -n "${TEMPORAL_CLI_PATH:-}" ]; then
  echo "setup: using TEMPORAL_CLI_PATH=$TEMPORAL_CLI_PATH"
elif command -v temporal >/dev/null 2>&1; then
  echo "setup: using $(command -v temporal)"
elif [ ! -x .tools/bin/temporal ]; then
  need_go "the Temporal CLI (the dev server)" TEMPORAL_CLI_PATH
  echo "setup: building the Temporal CLI v1.5.1 with Go into .tools/bin (a few minutes, once)"
  GOBIN="$PWD/.tools/bin" go install github.com/temporalio/cli/cmd/temporal@v1.5.1
fi

# Versity S3 gateway: a real S3-compatible server over a local folder, for the shared results store's tests.
if [ "$test_tools" = 0 ]; then
  :
elif [ -n "${VERSITYGW_PATH:-}" ]; then
  echo "setup: using VERSITYGW_PATH=$VERSITYGW_PATH"
elif [ ! -x .tools/bin/versitygw ]; then
  need_go "the Versity S3 gateway (the results-store tests)" VERSITYGW_PATH
  echo "setup: building the Versity S3 gateway (versitygw) v1.8.0 with Go into .tools/bin (a few minutes, once)"
  GOBIN="$PWD/.tools/bin" go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
fi
echo "setup: done (${SECONDS} s)"
