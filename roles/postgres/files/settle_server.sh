# Runs in the postgres container once the server is up, as
#   sh -c "<this file>" settle_server USER DB PORT RELOAD
# the steps that need the running server, in one exec rather than one per step. It prints one
# line per change and nothing else; tasks/deploy.yml reads them:
#   "<setting>: needs a restart", "settings reloaded", "extension created", "password changed"
# Settings the server cannot take exit 3 with them on stderr, one per line; anything else
# fails with the reason on stderr and another non-zero status.
set -eu
user=$1 db=$2 port=$3 reload=$4

query() {
  psql -XAtq -v ON_ERROR_STOP=1 -U "$user" -d "$db" "$@" </dev/null
}

# The server reads its settings file as it is now: a changed setting it can only take at start
# shows up here until the server restarts (also after an interrupted run). Any other error (an
# unknown name, a bad value) stops here, before the reload would ignore it.
errors=$(query -c "SELECT f.name || ': ' || CASE WHEN s.context = 'postmaster' THEN 'needs a restart' ELSE f.error END
  FROM pg_file_settings f LEFT JOIN pg_settings s ON s.name = f.name
  WHERE f.error IS NOT NULL ORDER BY 1")
bad=$(printf '%s\n' "$errors" | grep -v -e ': needs a restart$' -e '^$' || true)
if [ -n "$bad" ]; then
  printf '%s\n' "$bad" >&2
  exit 3
fi
if [ -n "$errors" ]; then
  printf '%s\n' "$errors"
fi

if [ "$reload" = reload ]; then
  query -c 'SELECT pg_reload_conf()' >/dev/null
  echo 'settings reloaded'
fi

query -c "SELECT 'extension created' FROM pg_available_extensions
  WHERE name = 'pg_stat_statements' AND installed_version IS NULL" \
  -c 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements'

# The image sets the password only when it creates the cluster. Checked like a client does, by
# service name (loopback connections are trusted); the new password goes through stdin and a
# file, never a command line or a log.
if ! PGPASSWORD="$(cat /run/secrets/postgres_password)" \
  psql -XAtq -h postgres -p "$port" -U "$user" -d "$db" -c 'SELECT 1' >/dev/null 2>&1 </dev/null; then
  psql -Xq -v ON_ERROR_STOP=1 -U "$user" -d "$db" -f - <<'SQL'
SET log_min_duration_statement = -1;
SET log_min_error_statement = panic;
SET log_statement = none;
SET pg_stat_statements.track_utility = off;
\set password `cat /run/secrets/postgres_password`
ALTER ROLE CURRENT_USER PASSWORD :'password';
SQL
  echo 'password changed'
fi
