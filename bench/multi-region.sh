#!/usr/bin/env bash
# Two regions on one Postgres primary (release build): the test harness of
# tests/app/regions starts a primary and a streaming replica from the machine's Postgres
# binaries, a Redis per region and one node per region; region two reaches the primary through
# a TCP proxy that delays each byte by ONE_WAY_MS each way. Prints, for each region, p50/p99 of
# /api/v1/whoami and introspection and the API sign-in latency, and, in each direction, the
# time from a sign-out's answer in one region until the other refuses its access token.
#
# Usage: bench/multi-region.sh  (ROUNDS=200, ONE_WAY_MS=50; needs initdb/pg_ctl/pg_basebackup
#                               under /usr/lib/postgresql/*/bin and redis-server)
set -euo pipefail
cd "$(dirname "$0")/.."

export ROUNDS="${ROUNDS:-200}"
export PORTCULLIS_TEST_ONE_WAY_MS="${ONE_WAY_MS:-50}"
cargo test --release --quiet --test app -- --ignored --nocapture \
  regions::measure::measure_two_regions 2>&1 |
  grep -E "^(two regions|region |revoked|  \(the)|.*panicked|error)"
