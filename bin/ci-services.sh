#!/usr/bin/env bash
# Services the test suite needs on a Debian 12 machine: a PostgreSQL server (Debian's `postgresql`)
# with a role and a database for the lwa-db tests. Idempotent: installs the package when missing,
# creates the cluster when there is none, starts it, creates role `lwa` (CREATEDB; the tests make one
# database per test) and database `lwa_test`. Prints the URL to export (stdout), logs to stderr:
#
#   eval "$(bin/ci-services.sh)"      # sets LWA_TEST_PG_URL=postgresql+psycopg://lwa:lwa@127.0.0.1:PORT/lwa_test
set -euo pipefail

sudo_cmd=""
[ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
as_postgres() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }

if ! dpkg-query -W -f='${Status}' postgresql 2>/dev/null | grep -q "install ok installed"; then
    echo "ci-services: installing postgresql" >&2
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends postgresql >&2
fi
version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {found=1} END {exit !found}'; then
    echo "ci-services: creating cluster $version/main" >&2
    $sudo_cmd pg_createcluster "$version" main >&2
fi
if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" && $4 == "online" {up=1} END {exit !up}'; then
    echo "ci-services: starting PostgreSQL $version/main" >&2
    $sudo_cmd pg_ctlcluster "$version" main start >&2
fi
port=$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {print $3}')
for _ in $(seq 60); do pg_isready -q -h 127.0.0.1 -p "$port" && break; sleep 1; done
pg_isready -q -h 127.0.0.1 -p "$port" || { echo "ci-services: PostgreSQL did not come up on port $port" >&2; exit 1; }

psql_admin() { as_postgres psql -p "$port" -v ON_ERROR_STOP=1 -qtAc "$1"; }
[ "$(psql_admin "SELECT 1 FROM pg_roles WHERE rolname = 'lwa'")" = 1 ] \
    || psql_admin "CREATE ROLE lwa LOGIN CREATEDB PASSWORD 'lwa'" >&2
# the tests drop their databases WITH (FORCE), which may have to end an autovacuum worker there
psql_admin "GRANT pg_signal_backend TO lwa" >&2
[ "$(psql_admin "SELECT 1 FROM pg_database WHERE datname = 'lwa_test'")" = 1 ] \
    || psql_admin "CREATE DATABASE lwa_test OWNER lwa" >&2
echo "ci-services: PostgreSQL $version on 127.0.0.1:$port, role lwa, database lwa_test" >&2
echo "export LWA_TEST_PG_URL=postgresql+psycopg://lwa:lwa@127.0.0.1:$port/lwa_test"
