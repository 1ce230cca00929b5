#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what the tests need
# (oathtool, Chromium, the Python and Node.js test clients, PostgreSQL), checks formatting and lints, then runs
# every test against SQLite and again against PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

step() { printf '\n==> %s\n' "$*"; }

step "test tools: oathtool, chromium, Java 17, PostgreSQL (Debian), pyotp, standardwebhooks, twilio, aiosmtpd, schemathesis (PyPI), twilio, playwright-core, Salesforce's Apex tools (npm)"
if ! command -v oathtool >/dev/null || [ ! -x /usr/bin/chromium ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq oathtool chromium >/dev/null
fi
if ! python3 -c "import pyotp, standardwebhooks, twilio, aiosmtpd, schemathesis" 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check pyotp standardwebhooks twilio aiosmtpd schemathesis
fi
if ! command -v npm >/dev/null; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >/dev/null
fi
if [ ! -d tests/support/node/node_modules/twilio ] || [ ! -d tests/support/node/node_modules/playwright-core ]; then
  bash scripts/npm-install.sh tests/support/node
fi
if ! command -v java >/dev/null; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq openjdk-17-jre-headless >/dev/null
fi
$SUDO bash .ci/postgres.sh

step "Salesforce kit: offline checks (Apex parser, apex-ls, PMD with the AppExchange rules)"
bash integrations/salesforce/check.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "the README's server command resolves to the server binary"
cargo run -q --locked -- --version

step "tests on SQLite"
TEST_DB=sqlite cargo test --workspace --locked

step "tests on PostgreSQL"
TEST_DB=postgres cargo test --workspace --locked

step "all tests passed on SQLite and PostgreSQL"
