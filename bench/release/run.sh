#!/bin/bash
# Requests during releases: a load generator on the lb host of the multi_host Molecule
# scenario (lb, two app hosts, a worker host, a db/cache host) sends HTTPS requests through
# nginx while playbooks/deploy.yml releases a new image and playbooks/rollback.yml returns to
# the previous one. Prints, per release: requests sent, failed, the longest gap between two
# successful answers, and the playbook's wall time; writes the table and JSON to
# bench/release/results/. Not a test (see README.md).
#
#   bench/release/run.sh              # THREADS=4 concurrent clients
#   REUSE=1 KEEP=1 bench/release/run.sh   # on hosts molecule converge -s multi_host left up
#
# It uses the scenario's hosts (molecule create + converge -s multi_host), so it must not run
# while `molecule test -s multi_host` does; it destroys them at the end (KEEP=1 keeps them).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
export PATH="$repo/.venv/bin:$PATH"
THREADS=${THREADS:-4}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
results="$repo/bench/release/results"
mkdir -p "$results"
export ANSIBLE_FORCE_COLOR=0 PY_COLORS=0

cleanup() { [ "${KEEP:-0}" = 1 ] || molecule destroy -s multi_host >/dev/null 2>&1 || true; }
trap cleanup EXIT

load1() { cut -d' ' -f1 /proc/loadavg; }
echo "load before: $(load1)"
if [ "${REUSE:-0}" != 1 ]; then # REUSE=1: the scenario's hosts are up and converged already
	converge_started=$SECONDS
	molecule create -s multi_host >/dev/null
	molecule converge -s multi_host >"$results/$stamp-converge.log" 2>&1
	echo "site.yml on 5 hosts: $((SECONDS - converge_started)) s (create + converge)"
fi
# Molecule's inventory of the scenario (host connections and the scenario's group_vars).
inventory=$(ls -td "$HOME"/.ansible/tmp/molecule.*.multi_host/inventory | head -n 1) # the newest: other clones leave theirs
# Streamed in, not `docker cp`: systemd mounts a tmpfs on the host's /tmp, and docker cp
# writes beneath it, where python3 does not see the file.
docker exec -i mh-lb sh -c 'cat >/tmp/load.py' <tests/load/https_load.py

rows=()
release() { # name playbook args...
	local name=$1 playbook=$2
	shift 2
	docker exec mh-lb rm -f /tmp/load.stop /tmp/load.json
	docker exec -d mh-lb sh -c "python3 /tmp/load.py https://127.0.0.1/health /tmp/load.stop /tmp/load.json $THREADS >/tmp/load.log 2>&1"
	sleep 2
	if ! docker exec mh-lb pgrep -f /tmp/load.py >/dev/null; then
		echo "the load generator is not running on mh-lb:" >&2
		docker exec mh-lb cat /tmp/load.log >&2
		exit 1
	fi
	local before started rc=0
	before=$(load1)
	started=$(date +%s.%N)
	ansible-playbook -i "$inventory" "playbooks/$playbook" "$@" >"$results/$stamp-$name.log" 2>&1 || rc=$?
	local took
	took=$(awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
	sleep 2
	docker exec mh-lb touch /tmp/load.stop
	local waited=0
	until docker exec mh-lb test -f /tmp/load.json; do
		sleep 0.5
		waited=$((waited + 1))
		if [ "$waited" -gt 120 ]; then
			echo "the load generator wrote no summary within 60 s:" >&2
			docker exec mh-lb cat /tmp/load.log >&2
			exit 1
		fi
	done
	local summary
	summary=$(docker exec mh-lb cat /tmp/load.json)
	echo "$name: playbook rc=$rc in $took s; load $before -> $(load1); $summary"
	rows+=("$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(json.dumps({"release": sys.argv[2], "playbook_rc": int(sys.argv[3]), "playbook_s": float(sys.argv[4]), "load_before": float(sys.argv[5]), "load_after": float(sys.argv[6]), **d}))' "$summary" "$name" "$rc" "$took" "$before" "$(load1)")")
}

release deploy-app-2 deploy.yml -e app_image=deployer-sample/app:2 -e app_image_source=build \
	-e "app_image_build_path=$repo/molecule/multi_host/images/app-2"
release rollback rollback.yml

printf '%s\n' "${rows[@]}" | python3 bench/release/table.py "$results/$stamp"
