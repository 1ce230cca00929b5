#!/usr/bin/env bash
# npm install in the folder given (default: here), tried up to three times:
# the registry can be caught between publishing a package and one it
# depends on (ETARGET for a version it has a minute later), and a test run
# should not fail for that.
set -euo pipefail
cd "${1:-.}"
for attempt in 1 2 3; do
  npm install --no-progress --loglevel=error && exit 0
  [ "$attempt" = 3 ] && break
  echo "npm install failed in $PWD (attempt $attempt of 3); trying again in 30 s" >&2
  sleep 30
done
exit 1
