#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on loopback for the storage tests and print its URL;
# `postgres.sh stop` stops it and `postgres.sh restart [SECONDS]` restarts it as a failover or a
# maintenance window does (`pg_ctl stop -m fast`: every connection is dropped, the data stays),
# down for SECONDS (default 0) before it starts again. Installs
# Debian's postgresql first when the machine has none (CI runs as root).
set -euo pipefail
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
fi
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
dir=${NAS_PROXY_PG_DIR:-/tmp/nas-proxy-pg}
port=${NAS_PROXY_PG_PORT:-54329}
as_owner=()
if [ "$(id -u)" = 0 ]; then as_owner=(runuser -u postgres --); fi  # the server refuses to run as root
options="-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=200"
start() { "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -o "$options" start >&2; }
if [ "${1:-}" = restart ]; then
  "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >&2
  sleep "${2:-0}"
  start
  exit 0
fi
if [ -f "$dir/data/postmaster.pid" ]; then "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast stop >&2 || true; fi
if [ "${1:-}" = stop ]; then exit 0; fi
rm -rf "$dir" && mkdir -p "$dir"
if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; fi
"${as_owner[@]}" "$bin/initdb" -D "$dir/data" -A trust -U postgres >/dev/null
start
"${as_owner[@]}" "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres nas_proxy
echo "postgresql://postgres@127.0.0.1:$port/nas_proxy"
