#!/usr/bin/env bash
# Load run: the example ledger's `GET …/accounts/{id}` with lib-auth enabled (local mode, a
# verified token, the compiled policy) against the same binary with auth disabled, one after the
# other on loopback. Needs wrk (Debian: apt-get install wrk). Bounded: DURATION per run.
#
#   benches/load/ledger-get-account.sh            # 10 s per run, 2 threads, 50 connections
#   DURATION=30s CONNECTIONS=100 benches/load/ledger-get-account.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-50}
THREADS=${THREADS:-2}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }

cargo build -q --release -p lib-auth-examples --bin ledger --bin demo-credentials
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
TOKEN=$(target/release/demo-credentials "$work/jwks.json" midaz-editor-role)

run() { # $1 = label, $2 = port, rest = env assignments
  local label=$1 port=$2; shift 2
  env "$@" LEDGER_PORT="$port" RUST_LOG=warn target/release/ledger >"$work/$label.out" 2>&1 &
  local pid=$!
  for _ in $(seq 50); do grep -q listening "$work/$label.out" && break; sleep 0.1; done
  local base="http://127.0.0.1:$port" auth=(-H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json")
  local org led acc
  org=$(curl -sf "${auth[@]}" -d '{"name":"load"}' "$base/v1/organizations" | sed 's/.*"id":"\([^"]*\)".*/\1/')
  led=$(curl -sf "${auth[@]}" -d '{"name":"load"}' "$base/v1/organizations/$org/ledgers" | sed 's/.*"id":"\([^"]*\)".*/\1/')
  acc=$(curl -sf "${auth[@]}" -d '{"name":"load"}' "$base/v1/organizations/$org/ledgers/$led/accounts" | sed 's/.*"id":"\([^"]*\)".*/\1/')
  local url="$base/v1/organizations/$org/ledgers/$led/accounts/$acc"
  test "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$url")" = 200
  echo "== $label: wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency GET $url"
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "Authorization: Bearer $TOKEN" "$url" \
    | grep -E 'Requests/sec|Latency  |99%|Non-2xx|requests in'
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

run auth-enabled 3101 PLUGIN_AUTH_ENABLED=true PLUGIN_AUTH_JWKS_FILE="$work/jwks.json" PLUGIN_AUTH_ISSUER=http://issuer.test
run auth-disabled 3102 PLUGIN_AUTH_ENABLED=false
