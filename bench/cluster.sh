#!/usr/bin/env bash
# Cross-node invalidation in a cluster: two real nodes (release build) on one Postgres, and Redis
# or not. Each round gets a client token on node A, checks it at node B (so B caches "active"),
# revokes it on node A and polls B every 2 ms until B refuses it. Prints p50/p90/p99/max, once
# over Redis pub/sub and once over Postgres LISTEN/NOTIFY.
#
# Usage: bench/cluster.sh  (ROUNDS=200 to change; needs Postgres at 127.0.0.1:5432 and Redis at
#                          127.0.0.1:6379, or PORTCULLIS_TEST_POSTGRES_URL / _REDIS_URL)
set -euo pipefail
cd "$(dirname "$0")/.."

export PORTCULLIS_TEST_POSTGRES_URL="${PORTCULLIS_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
export PORTCULLIS_TEST_REDIS_URL="${PORTCULLIS_TEST_REDIS_URL:-redis://127.0.0.1:6379}"
export ROUNDS="${ROUNDS:-200}"

for bus in redis postgres; do
  BUS="$bus" cargo test --release --quiet --test app -- --ignored --nocapture \
    cluster::under_load::measure_cross_node_invalidation 2>&1 | grep -E "cross-node|panicked|error"
done
