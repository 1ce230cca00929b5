#!/usr/bin/env bash
# Instructions the server executes per request in one benchmark row, counted
# by valgrind's callgrind: the same count for the same binary whatever the
# machine's spell, where rates on this 2-core machine move by ±20% between
# runs. For judging a change that saves a few percent (bench/RESULTS.md,
# "At 595d29d").
#
#   bash bench/instructions.sh BIN SCENARIO 'ROW LABEL'
#   bash bench/instructions.sh target/release/vouchsafe totp 'wrong TOTP code, 1000 users'
#   bash bench/instructions.sh target/release/vouchsafe wrong-code 'verifications/check, wrong code'
#
# The benchmark starts BIN's `serve` under callgrind (its `init` natively),
# about 50 times slower than natively; 5 s into the row the counts are
# zeroed, 25 s later dumped, and the dump's total is divided by the
# requests the generator sent meanwhile. Needs valgrind (Debian's package)
# and a release build of vouchsafe-bench. Count on an otherwise idle
# machine: the server's timed background work (the checkpointer, the
# dispatcher's ticks) is counted too, and a busier machine spreads it over
# fewer requests (one binary: 241,238 per wrong TOTP answer idle, 249,355
# beside a CI run).
set -euo pipefail
cd "$(dirname "$0")/.."

bin=$(realpath "$1")
scenario=$2
label=$3
command -v valgrind > /dev/null || { echo "valgrind is missing (apt-get install valgrind)" >&2; exit 1; }
[ -x target/release/vouchsafe-bench ] || { echo "build it first: cargo build --release -p vouchsafe-bench" >&2; exit 1; }

work=$(mktemp -d)
# The server too: the generator killed leaves its child running.
trap 'kill "$bench" 2> /dev/null || true; pkill -f "callgrind-out-file=$work" || true; rm -rf "$work"' EXIT
cat > "$work/serve.sh" << EOF
#!/usr/bin/env bash
if [ "\$1" = serve ]; then
  exec valgrind --tool=callgrind --callgrind-out-file=$work/out.%p "$bin" "\$@" 2>> $work/valgrind.log
fi
exec "$bin" "\$@"
EOF
chmod +x "$work/serve.sh"

target/release/vouchsafe-bench --bin "$work/serve.sh" --concurrency 64 --seconds 40 --engine sqlite \
  --only "$scenario" --totp-users 1000 --out "$work/RESULTS.md" --results-dir "$work" 2> "$work/bench.log" > /dev/null &
bench=$!

sent() { tail -c 400 "$work/bench.log" | tr '\r' '\n' | grep -F "$label" | tail -1 | awk '{for (i = 1; i <= NF; i++) if ($i == "req") print $(i - 1)}'; }
for _ in $(seq 1 2400); do grep -qF "$label" "$work/bench.log" 2> /dev/null && break; sleep 0.5; done
grep -qF "$label" "$work/bench.log" || { echo "no row labelled '$label' started" >&2; exit 1; }
sleep 5
pid=$(pgrep -f "callgrind-out-file=$work" | head -1)
callgrind_control -z "$pid" > /dev/null
before=$(sent)
sleep 25
callgrind_control -d "$pid" > /dev/null
after=$(sent)
sleep 1
total=$(grep -h '^totals:\|^summary:' "$work"/out."$pid".* | head -1 | awk '{print $2}')
requests=$((after - before))
echo "$(basename "$bin"): $requests requests, $total instructions, $((total / requests)) per request"
