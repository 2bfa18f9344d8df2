#!/bin/sh
# Test stand-in for the official nginx image's entrypoint: before nginx starts, run the
# executable *.sh files in /docker-entrypoint.d/ and source the *.envsh ones, in version order.
set -e

log() { if [ -z "${NGINX_ENTRYPOINT_QUIET_LOGS:-}" ]; then echo "$@"; fi; }

if [ "$1" = nginx ] || [ "$1" = nginx-debug ]; then
	if find /docker-entrypoint.d/ -mindepth 1 -maxdepth 1 -type f -print -quit 2>/dev/null | read -r _; then
		log "$0: /docker-entrypoint.d/ is not empty, will attempt to perform configuration"
		for f in $(find /docker-entrypoint.d/ -follow -type f -print | sort -V); do
			case "$f" in
				*.envsh)
					# shellcheck source=/dev/null
					if [ -x "$f" ]; then log "$0: Sourcing $f"; . "$f"; else log "$0: Ignoring $f, not executable"; fi ;;
				*.sh) if [ -x "$f" ]; then log "$0: Launching $f"; "$f"; else log "$0: Ignoring $f, not executable"; fi ;;
				*) log "$0: Ignoring $f" ;;
			esac
		done
		log "$0: Configuration complete; ready for start up"
	else
		log "$0: No files found in /docker-entrypoint.d/, skipping configuration"
	fi
fi

exec "$@"
