#!/bin/bash
# Test stand-in for the official redis image's entrypoint; see the Dockerfile.
set -e

has_cap() {
	setpriv -d | grep -q 'Capability bounding set:.*\b'"$1"'\b'
}

# `-f`/`--option` or `something.conf` as the first argument means redis-server.
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
	set -- redis-server "$@"
fi

if [ "$(basename -- "$1")" = redis-server ]; then
	# Drop from root to redis when the capabilities allow it (not with cap_drop: [ALL]).
	if [ "$(id -u)" = 0 ] && has_cap setuid && has_cap setgid; then
		find . \! -user redis -exec chown redis '{}' + || :
		exec setpriv --reuid=redis --regid=redis --clear-groups --nnp "$0" "$@"
	fi

	# The official image builds redis with protected mode off; Debian's defaults to on, which
	# refuses other containers when no password is set. Keep an explicit setting if given.
	config=
	if [ -n "${2:-}" ] && [ "${2#-}" = "$2" ]; then config=$2; fi
	if ! printf '%s\n' "$@" | grep -qx -- '--protected-mode' &&
		! { [ -n "$config" ] && [ -r "$config" ] && grep -qiE '^[[:space:]]*protected-mode[[:space:]]' "$config"; }; then
		set -- "$@" --protected-mode no
	fi
fi

# A private umask for dump files unless one was set (the official image does the same).
if [ "$(umask)" = 0022 ]; then umask 0077; fi

exec "$@"
