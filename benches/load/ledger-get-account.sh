#!/usr/bin/env bash
# Load run: the example ledger's `GET …/accounts/{id}` with lib-auth enabled (local mode, a
# verified token, the compiled policy) against the same binary with auth disabled. Both run
# at once on loopback; wrk alternates between them ROUNDS times, and the script prints each
# run and the median ratio. Needs wrk (Debian: apt-get install wrk). Bounded: ROUNDS × 2 ×
# DURATION of load.
#
#   benches/load/ledger-get-account.sh                 # 3 rounds of 10 s each, 2 threads, 50 connections
#   ROUNDS=5 DURATION=20s CONNECTIONS=100 benches/load/ledger-get-account.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-50}
THREADS=${THREADS:-2}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }

cargo build -q --release -p lib-auth-examples --bin ledger --bin demo-credentials
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
TOKEN=$(target/release/demo-credentials "$work/jwks.json" midaz-editor-role)

start() { # $1 = label, $2 = port, rest = env assignments; prints the account URL
  local label=$1 port=$2; shift 2
  env "$@" LEDGER_PORT="$port" RUST_LOG=warn target/release/ledger >"$work/$label.out" 2>&1 &
  for _ in $(seq 50); do grep -q listening "$work/$label.out" && break; sleep 0.1; done
  local base="http://127.0.0.1:$port" h=(-H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json")
  local org led acc
  org=$(curl -sf "${h[@]}" -d '{"name":"load"}' "$base/v1/organizations" | sed 's/.*"id":"\([^"]*\)".*/\1/')
  led=$(curl -sf "${h[@]}" -d '{"name":"load"}' "$base/v1/organizations/$org/ledgers" | sed 's/.*"id":"\([^"]*\)".*/\1/')
  acc=$(curl -sf "${h[@]}" -d '{"name":"load"}' "$base/v1/organizations/$org/ledgers/$led/accounts" | sed 's/.*"id":"\([^"]*\)".*/\1/')
  local url="$base/v1/organizations/$org/ledgers/$led/accounts/$acc"
  test "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$url")" = 200
  echo "$url"
}

load() { # $1 = label, $2 = url; prints "label req/s p99"
  local out
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "Authorization: Bearer $TOKEN" "$2")
  if grep -q 'Non-2xx' <<<"$out"; then echo "$1: non-2xx answers" >&2; exit 1; fi
  echo "$1 $(awk '/Requests\/sec/ {print $2}' <<<"$out") $(awk '$1 == "99%" {print $2}' <<<"$out")"
}

enabled=$(start auth-enabled 3101 PLUGIN_AUTH_ENABLED=true PLUGIN_AUTH_JWKS_FILE="$work/jwks.json" PLUGIN_AUTH_ISSUER=http://issuer.test)
disabled=$(start auth-disabled 3102 PLUGIN_AUTH_ENABLED=false)
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, $ROUNDS rounds, GET …/accounts/{id}, both with the token header"
for round in $(seq "$ROUNDS"); do
  e=$(load enabled "$enabled"); d=$(load disabled "$disabled")
  echo "round $round: $e | $d | ratio $(awk -v a="$(cut -d' ' -f2 <<<"$e")" -v b="$(cut -d' ' -f2 <<<"$d")" 'BEGIN {printf "%.3f", a / b}')"
done | tee "$work/rounds"
awk '{print $NF}' "$work/rounds" | sort -n | awk '{r[NR] = $1} END {print "median ratio (enabled / disabled req/s): " r[int((NR + 1) / 2)]}'
