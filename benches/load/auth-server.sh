#!/usr/bin/env bash
# Load run of lib-auth-server on loopback (release build, temp database). Needs wrk (Debian:
# apt-get install wrk). Bounded: about 6 × DURATION of load. Prints, in order:
#   1. RSS idle: at first start (admin bootstrap), after a restart, after one login;
#   2. POST /v1/authorize (Lerian user check, raw JWT) vs GET /health (a trivial route of the
#      same process), alternating, ROUNDS rounds: req/s, p99, and the median ratio;
#   3. client_credentials tokens issued per second (Lerian JSON endpoint);
#   4. /v1/authorize p99 while 50 connections run password logins at the same time;
#   5. RSS right after the load (and its peak), and 15 s later.
#
#   benches/load/auth-server.sh
#   ROUNDS=5 DURATION=20s benches/load/auth-server.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-1}
PORT=${PORT:-4700}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }

cargo build -q --release -p lib-auth-server
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
export AUTH_DB_PATH="$work/auth.db" AUTH_PORT="$PORT" IDENTITY_PORT="$((PORT + 1))" AUTH_ADMIN_PASSWORD="load-run-admin-password" RUST_LOG=warn
base="http://127.0.0.1:$PORT"
app=$(target/release/lib-auth-server app create --name midaz --role midaz-editor-role)
client_id=$(sed -n 's/.*"clientId": *"\([^"]*\)".*/\1/p' <<<"$app")
client_secret=$(sed -n 's/.*"clientSecret": *"\([^"]*\)".*/\1/p' <<<"$app")
start_server() {
  target/release/lib-auth-server >>"$work/server.out" 2>&1 &
  server=$!
  for _ in $(seq 100); do curl -sf "$base/health" >/dev/null 2>&1 && break; sleep 0.1; done
}
rss() { awk '/VmRSS/ {printf "%.1f MiB", $2 / 1024}' "/proc/$server/status"; }
peak() { awk '/VmHWM/ {printf "%.1f MiB", $2 / 1024}' "/proc/$server/status"; }
# The first start creates the admin (one password hash); later starts over the same database
# do not, which is how a deployed server starts.
start_server
sleep 2
echo "RSS idle, first start (admin bootstrapped): $(rss)"
kill -TERM "$server"; wait "$server" || true
start_server
sleep 2
echo "RSS idle, restart over the same database: $(rss)"
# The login flood logs in as 50 users in turn: 50 parallel logins of one username would be
# throttled (checks still running count towards the username's limit of 5).
USERS=50  # created while the server runs (the CLI shares its database)
for n in $(seq 0 $((USERS - 1))); do
  echo "load-run-user-password" | target/release/lib-auth-server user create --username "load-user-$n" \
    --email "load-user-$n@example.test" --group midaz-viewer-group --password-stdin >/dev/null
done

login='{"grantType":"password","username":"admin","password":"load-run-admin-password"}'
token=$(curl -sf -H 'Content-Type: application/json' -d "$login" "$base/v1/login/oauth/access_token" \
  | sed 's/.*"accessToken":"\([^"]*\)".*/\1/')
echo "RSS after one password login: $(rss)"

cat >"$work/authorize.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"sub":"lerian/admin","resource":"ledgers","action":"get","product":"midaz"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "$token"
LUA
cat >"$work/client-credentials.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"grantType":"client_credentials","clientId":"$client_id","clientSecret":"$client_secret"}'
wrk.headers["Content-Type"] = "application/json"
LUA
cat >"$work/login.lua" <<LUA
counter = 0
request = function()
  counter = counter + 1
  local body = '{"grantType":"password","username":"load-user-' .. (counter % $USERS) ..
    '","password":"load-run-user-password"}'
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
LUA

run() { # $1 = label, rest = wrk arguments; prints "label req/s p99"
  local label=$1 out; shift
  out=$(wrk --latency "$@")
  if grep -q 'Non-2xx' <<<"$out"; then echo "$label: non-2xx answers" >&2; echo "$out" >&2; exit 1; fi
  echo "$label $(awk '/Requests\/sec/ {print $2}' <<<"$out") $(awk '$1 == "99%" {print $2}' <<<"$out")"
}

echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, $ROUNDS rounds: POST /v1/authorize vs GET /health"
for round in $(seq "$ROUNDS"); do
  a=$(run authorize -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" -s "$work/authorize.lua" "$base/v1/authorize")
  h=$(run health -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" "$base/health")
  echo "round $round: $a | $h | ratio $(awk -v a="$(cut -d' ' -f2 <<<"$a")" -v b="$(cut -d' ' -f2 <<<"$h")" 'BEGIN {printf "%.3f", a / b}')"
done | tee "$work/rounds"
awk '{print $NF}' "$work/rounds" | sort -n | awk '{r[NR] = $1} END {print "median ratio (authorize / health req/s): " r[int((NR + 1) / 2)]}'

echo "client_credentials, wrk -t$THREADS -c$CONNECTIONS -d$DURATION:"
run client_credentials -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" -s "$work/client-credentials.lua" \
  "$base/v1/login/oauth/access_token" | awk '{print "  tokens/s " $2 ", p99 " $3}'

echo "authorize (-c8) while 50 connections log in with passwords:"
wrk -t1 -c50 -d"$DURATION" -s "$work/login.lua" "$base/v1/login/oauth/access_token" >"$work/logins.out" &
logins=$!
sleep 1
run authorize-under-logins -t1 -c8 -d"$(( ${DURATION%s} - 2 ))s" -s "$work/authorize.lua" "$base/v1/authorize" \
  | awk '{print "  authorize req/s " $2 ", p99 " $3}'
wait "$logins"
awk '/Requests\/sec/ {print "  logins/s " $2}' "$work/logins.out"
if grep -q 'Non-2xx' "$work/logins.out"; then echo "  logins: $(grep 'Non-2xx' "$work/logins.out")"; fi
echo "RSS right after the load: $(rss), peak (VmHWM) $(peak)"
sleep 15
echo "RSS 15 s after the load: $(rss)"
