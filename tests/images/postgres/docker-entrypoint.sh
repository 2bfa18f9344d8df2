#!/usr/bin/env bash
# Test stand-in for the official postgres image's entrypoint (same variables, same steps,
# same order); see the Dockerfile for what it reproduces and where it differs.
set -Eeo pipefail

# file_env VAR [DEFAULT]: VAR from the environment, or from the file named by VAR_FILE.
file_env() {
	local var=$1 file_var="${1}_FILE" val=${2:-}
	if [ -n "${!var:-}" ] && [ -n "${!file_var:-}" ]; then
		printf >&2 'error: both %s and %s are set (but are exclusive)\n' "$var" "$file_var"
		exit 1
	fi
	if [ -n "${!var:-}" ]; then
		val=${!var}
	elif [ -n "${!file_var:-}" ]; then
		val=$(<"${!file_var}")
	fi
	export "$var"="$val"
	unset "$file_var"
}

setup_env() {
	file_env POSTGRES_PASSWORD
	file_env POSTGRES_USER postgres
	file_env POSTGRES_DB "$POSTGRES_USER"
	file_env POSTGRES_INITDB_ARGS
	: "${POSTGRES_HOST_AUTH_METHOD:=}"
	DATABASE_ALREADY_EXISTS=
	if [ -s "$PGDATA/PG_VERSION" ]; then DATABASE_ALREADY_EXISTS=true; fi
}

# As root: create the directories and hand them to postgres (allows `--user`/`user:` too).
create_db_directories() {
	mkdir -p "$PGDATA"
	chmod 00700 "$PGDATA" || :
	mkdir -p /var/run/postgresql || :
	chmod 03775 /var/run/postgresql || :
	if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
		mkdir -p "$POSTGRES_INITDB_WALDIR"
		if [ "$(id -u)" = 0 ]; then find "$POSTGRES_INITDB_WALDIR" \! -user postgres -exec chown postgres '{}' +; fi
		chmod 700 "$POSTGRES_INITDB_WALDIR"
	fi
	if [ "$(id -u)" = 0 ]; then
		find "$PGDATA" \! -user postgres -exec chown postgres '{}' +
		find /var/run/postgresql \! -user postgres -exec chown postgres '{}' +
	fi
}

verify_minimum_env() {
	if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
		echo >&2 'Error: Database is uninitialized and superuser password is not specified.'
		echo >&2 '       Set POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE (or POSTGRES_HOST_AUTH_METHOD=trust).'
		exit 1
	fi
}

init_database_dir() {
	# initdb insists that the current uid has a passwd entry; fake one for arbitrary --user.
	local uid gid wrapper
	uid=$(id -u) gid=$(id -g)
	if ! getent passwd "$uid" >/dev/null; then
		for wrapper in {/usr,}/lib{/*,}/libnss_wrapper.so; do
			if [ -s "$wrapper" ]; then
				NSS_WRAPPER_PASSWD=$(mktemp) NSS_WRAPPER_GROUP=$(mktemp)
				export LD_PRELOAD=$wrapper NSS_WRAPPER_PASSWD NSS_WRAPPER_GROUP
				printf 'postgres:x:%s:%s:PostgreSQL:%s:/bin/false\n' "$uid" "$gid" "$PGDATA" >"$NSS_WRAPPER_PASSWD"
				printf 'postgres:x:%s:\n' "$gid" >"$NSS_WRAPPER_GROUP"
				break
			fi
		done
	fi
	if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then set -- --waldir "$POSTGRES_INITDB_WALDIR" "$@"; fi
	# eval keeps shell quoting inside POSTGRES_INITDB_ARGS working as with the official image.
	eval 'initdb --username="$POSTGRES_USER" --pwfile=<(printf "%s\n" "$POSTGRES_PASSWORD") '"$POSTGRES_INITDB_ARGS"' "$@"'
	if [[ "${LD_PRELOAD:-}" == */libnss_wrapper.so ]]; then
		rm -f "$NSS_WRAPPER_PASSWD" "$NSS_WRAPPER_GROUP"
		unset LD_PRELOAD NSS_WRAPPER_PASSWD NSS_WRAPPER_GROUP
	fi
}

# Host connections from anywhere with the server's password_encryption (scram-sha-256).
setup_hba_conf() {
	[ "$1" = postgres ] && shift
	local auth
	auth=$(postgres -C password_encryption "$@")
	: "${POSTGRES_HOST_AUTH_METHOD:=$auth}"
	printf '\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >>"$PGDATA/pg_hba.conf"
}

process_sql() {
	local cmd=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
	if [ -n "$POSTGRES_DB" ]; then cmd+=(--dbname "$POSTGRES_DB"); fi
	PGHOST='' PGHOSTADDR='' "${cmd[@]}" "$@"
}

# The database name comes from the outer POSTGRES_DB; psql must not connect to it yet.
# shellcheck disable=SC2097,SC2098
setup_db() {
	local exists
	exists=$(POSTGRES_DB='' process_sql --dbname postgres --set db="$POSTGRES_DB" --tuples-only \
		<<<"SELECT 1 FROM pg_database WHERE datname = :'db';")
	if [ -z "$exists" ]; then
		POSTGRES_DB='' process_sql --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
	fi
}

process_init_files() {
	local f
	for f; do
		case "$f" in
			*.sh)
				if [ -x "$f" ]; then
					echo "$0: running $f"
					"$f"
				else
					echo "$0: sourcing $f"
					# shellcheck source=/dev/null
					. "$f"
				fi
				;;
			*.sql) echo "$0: running $f"; process_sql -f "$f" ;;
			*.sql.gz) echo "$0: running $f"; gunzip -c "$f" | process_sql ;;
			*) echo "$0: ignoring $f" ;;
		esac
	done
}

# A server for the setup steps that listens on the unix socket only, with the CMD's options.
temp_server_start() {
	[ "$1" = postgres ] && shift
	set -- "$@" -c listen_addresses='' -p "${PGPORT:-5432}"
	NOTIFY_SOCKET='' PGUSER="${PGUSER:-$POSTGRES_USER}" pg_ctl -D "$PGDATA" -o "$(printf '%q ' "$@")" -w start
}

temp_server_stop() {
	PGUSER="${PGUSER:-postgres}" pg_ctl -D "$PGDATA" -m fast -w stop
}

want_help() {
	local arg
	for arg; do
		case "$arg" in -'?' | --help | --describe-config | -V | --version) return 0 ;; esac
	done
	return 1
}

main() {
	if [ "${1:0:1}" = - ]; then set -- postgres "$@"; fi
	if [ "$1" = postgres ] && ! want_help "$@"; then
		setup_env
		create_db_directories
		if [ "$(id -u)" = 0 ]; then
			exec env HOME=/var/lib/postgresql setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
		fi
		if [ -z "$DATABASE_ALREADY_EXISTS" ]; then
			verify_minimum_env
			ls /docker-entrypoint-initdb.d/ >/dev/null
			init_database_dir
			setup_hba_conf "$@"
			export PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
			temp_server_start "$@"
			setup_db
			process_init_files /docker-entrypoint-initdb.d/*
			temp_server_stop
			unset PGPASSWORD
			printf '\nPostgreSQL init process complete; ready for start up.\n\n'
		else
			printf '\nPostgreSQL Database directory appears to contain a database; Skipping initialization\n\n'
		fi
	fi
	exec "$@"
}

main "$@"
