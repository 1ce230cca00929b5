#!/usr/bin/env bash
# privacyIDEA side by side with vouchsafe, on this machine, over loopback.
#
# Installs privacyIDEA 3.14 from PyPI into a virtual environment, sets it up
# on SQLite with its default settings, serves it with gunicorn, enrolls HOTP
# tokens BENCH0…BENCH{n-1} (one shared key, PIN "bench"), then loads
# POST /validate/check with right codes using vouchsafe's own load
# generator at the same concurrencies as the main benchmark.
#
#   bash bench/peers/privacyidea.sh [--seconds 10] [--concurrency 1,8,64]
#
# Results: bench/results/privacyidea-<unix time>.json and
# bench/PEER-privacyidea.md. Environment: PI_WORK (work folder, default
# /tmp/vouchsafe-peer-privacyidea), PI_PORT (5001), PI_TOKENS (200),
# PI_WORKERS (gunicorn workers, default 2: one per core).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${PI_WORK:-/tmp/vouchsafe-peer-privacyidea}
PORT=${PI_PORT:-5001}
TOKENS=${PI_TOKENS:-200}
WORKERS=${PI_WORKERS:-2}
KEY_HEX=3132333435363738393031323334353637383930
PIN=bench
ADMIN_PASSWORD=bench-admin-password

mkdir -p "$WORK"
if [ ! -x "$WORK/venv/bin/pi-manage" ]; then
  echo "installing privacyIDEA 3.14 and gunicorn into $WORK/venv"
  python3 -m venv "$WORK/venv"
  "$WORK/venv/bin/pip" install -q "privacyidea==3.14" gunicorn
fi
PI="$WORK/venv/bin"

# A fresh database each run, like the main benchmark.
rm -f "$WORK/pi.sqlite" "$WORK/enckey" "$WORK/private.pem" "$WORK/public.pem"
cat > "$WORK/pi.cfg" <<CFG
SQLALCHEMY_DATABASE_URI = 'sqlite:///$WORK/pi.sqlite'
SECRET_KEY = '$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')'
PI_PEPPER = '$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')'
PI_ENCFILE = '$WORK/enckey'
PI_AUDIT_KEY_PRIVATE = '$WORK/private.pem'
PI_AUDIT_KEY_PUBLIC = '$WORK/public.pem'
PI_LOGFILE = '$WORK/privacyidea.log'
PI_LOGLEVEL = 30
CFG
export PRIVACYIDEA_CONFIGFILE="$WORK/pi.cfg"
"$PI/pi-manage" setup create_enckey >/dev/null
"$PI/pi-manage" setup create_audit_keys >/dev/null
"$PI/pi-manage" setup create_tables >/dev/null
"$PI/pi-manage" admin add admin -p "$ADMIN_PASSWORD" >/dev/null

"$PI/gunicorn" --workers "$WORKERS" --bind "127.0.0.1:$PORT" --log-level warning \
  --chdir "$WORK" "privacyidea.app:create_app(config_name='production')" &
GUNICORN=$!
trap 'kill $GUNICORN 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break
  sleep 0.2
done

echo "enrolling $TOKENS HOTP tokens"
JWT=$(curl -s -X POST "http://127.0.0.1:$PORT/auth" -d username=admin -d "password=$ADMIN_PASSWORD" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["result"]["value"]["token"])')
for i in $(seq 0 $((TOKENS - 1))) CHECK; do
  curl -s -o /dev/null -f -X POST "http://127.0.0.1:$PORT/token/init" -H "Authorization: $JWT" \
    -d type=hotp -d "serial=BENCH$i" -d "otpkey=$KEY_HEX" -d "pin=$PIN" -d genkey=0
done
# Is the set-up right? BENCHCHECK at counter 0 must accept 755224 (RFC 4226).
curl -s -X POST "http://127.0.0.1:$PORT/validate/check" -d serial=BENCHCHECK -d "pass=${PIN}755224" \
  | python3 -c 'import json,sys; v=json.load(sys.stdin)["result"]["value"]; assert v is True, v; print("privacyIDEA accepts a right code")'

cd "$ROOT"
cargo run --release -q -p vouchsafe-bench -- --peer-privacyidea "http://127.0.0.1:$PORT" \
  --peer-tokens "$TOKENS" --peer-key-hex "$KEY_HEX" --peer-pin "$PIN" \
  --out bench/PEER-privacyidea.md "$@"
