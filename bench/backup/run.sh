#!/bin/bash
# Backup and restore times for a database of BENCH_DB_GB (default 1) GB, and the time to rebuild
# a lost server from the offsite copy. Not a test: it prints figures (see README.md).
#
#   bench/backup/run.sh            # about 8 minutes on 2 cores (1 GB)
#
# It uses the backup scenario's hosts (molecule create/converge -s backup): backup-data runs the
# stack with the backup role, backup-offsite holds the restic repository over SFTP. Then:
#   1. fills PostgreSQL with BENCH_DB_GB of rows (a primary key, random and repetitive text);
#   2. times the backup job (dump, Redis, volumes, offsite copy: phases from its log), the drill,
#      and restore.yml from the local backup (app stopped, restored, healthy again);
#   3. recovery: a new test host, backup-rebuilt, gets site.yml (which installs the backup job)
#      and restore.yml from restic; the rows are counted on it.
# Everything it started is removed at the end (molecule destroy, the rebuilt host).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PWD/.venv/bin:$PATH"
SIZE_GB=${BENCH_DB_GB:-1}
ROWS=$((SIZE_GB * 4800000)) # about 225 bytes a row on disk, index included
# Test hosts keep docker volumes in memory, charged to the container that writes them: the
# database, its WAL and the drill's scratch copy count against PostgreSQL's limit.
BENCH_PG_MEMORY=$((SIZE_GB * 6 + 2))g
export DEPLOYER_STACK_ARCHIVE="$PWD/.cache/images/stack-images.tar"
export ANSIBLE_ROLES_PATH="$PWD/roles" ANSIBLE_PIPELINING=true

now() { date +%s.%N; }
elapsed() { awk -v end="$(now)" -v start="$1" 'BEGIN { printf "%.1f", end - start }'; }
report() { printf '%-58s %s\n' "$1" "$2" | tee -a "$RESULTS"; }
data() { docker exec backup-data "$@"; }
psql_data() {
	data docker compose -f /opt/shop/postgres/compose.yaml exec -T postgres psql -XAtq -v ON_ERROR_STOP=1 -U shop -d shop -c "$1"
}
# Seconds between the first log lines of the job matching $2 and $3 since $1 (journal of backup-data).
phase() {
	data journalctl -t shop-backup --since "@${1%.*}" -o short-unix --no-pager |
		awk -v a="$2" -v b="$3" 'index($0, a) && !s { s = $1 } index($0, b) && s && !e { e = $1 } END { printf "%.1f", e - s }'
}

cleanup() {
	docker rm -f backup-rebuilt >/dev/null 2>&1 || true
	molecule destroy -s backup >/dev/null 2>&1 || true
}
trap cleanup EXIT

RESULTS=$(mktemp)
echo "== setting up the backup scenario's hosts (not timed)"
molecule destroy -s backup >/dev/null
molecule converge -s backup >/tmp/bench-backup-converge.log 2>&1 || { tail -50 /tmp/bench-backup-converge.log; exit 1; }
# The newest: another clone of the project leaves its own molecule.*.backup directory.
INVENTORY=$(ls -td "$HOME"/.ansible/tmp/molecule.*.backup/inventory | head -n 1)
export MOLECULE_EPHEMERAL_DIRECTORY=${INVENTORY%/inventory}
ansible-playbook -i "$INVENTORY" bench/backup/postgres-memory.yml -e postgres_memory_limit="$BENCH_PG_MEMORY" \
	>/tmp/bench-backup-postgres.log 2>&1 || { tail -50 /tmp/bench-backup-postgres.log; exit 1; }

echo "== loading $SIZE_GB GB into PostgreSQL"
start=$(now)
psql_data "CREATE TABLE bench_rows (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, customer text NOT NULL,
  payload text NOT NULL);
  INSERT INTO bench_rows SELECT g, now() - g * interval '1 second', 'customer-' || (g % 5000),
    md5(random()::text) || md5(random()::text) || repeat(' lorem ipsum', 8) FROM generate_series(1, $ROWS) g"
psql_data "VACUUM ANALYZE bench_rows"
# The rows the scenario's drill expects (backup_drill_expected_tables), as the app writes them.
psql_data "INSERT INTO task_results (id, note, worker) SELECT 'bench-' || g, 'bench', 'bench' FROM generate_series(1, 3) g"
report "load $ROWS rows (s)" "$(elapsed "$start")"
report "database size" "$(psql_data "SELECT pg_size_pretty(pg_database_size('shop'))")"

echo "== backup job"
start=$(now)
data /usr/local/sbin/shop-backup backup
report "backup job, total (s)" "$(elapsed "$start")"
report "  dump of the database (s)" "$(phase "$start" "dumping database shop" "dumping the roles")"
report "  offsite copy of the dump to restic over SFTP (s)" \
	"$(phase "$start" "copying postgres backup" "copying redis backup")"
report "  offsite copy of the volumes, restic forget --prune (s)" \
	"$(phase "$start" "copying volumes backup" "backup succeeded")"
report "dump size" "$(data sh -c 'du -sh /var/backups/shop/postgres/2* | tail -n 1 | cut -f1')"
report "restic repository size" "$(docker exec backup-offsite du -sh /srv/restic/shop | cut -f1)"

echo "== drill"
start=$(now)
data /usr/local/sbin/shop-backup drill
report "drill: restore into a scratch database and check (s)" "$(elapsed "$start")"

echo "== restore.yml from the local backup"
start=$(now)
ansible-playbook -i "$INVENTORY" playbooks/restore.yml -e backup_restore_confirm=yes >/tmp/bench-backup-restore.log
report "restore.yml, total (s)" "$(elapsed "$start")"
report "  restore of the database (s)" "$(phase "$start" "restoring database shop" "restore postgres succeeded")"

echo "== recovery: a new server from the offsite copy"
rows=$(psql_data "SELECT count(*) FROM bench_rows")
start=$(now)
ansible-playbook -i localhost, bench/backup/start-host.yml >/dev/null
report "recovery: start a new test host (s)" "$(elapsed "$start")"
step=$(now)
ansible-playbook -i bench/backup/inventory site.yml -e postgres_memory_limit="$BENCH_PG_MEMORY" \
	>/tmp/bench-backup-site.log 2>&1 ||
	{ tail -50 /tmp/bench-backup-site.log; exit 1; }
report "recovery: site.yml (s)" "$(elapsed "$step")"
step=$(now)
ansible-playbook -i bench/backup/inventory playbooks/restore.yml -e backup_restore_from=restic \
	-e backup_restore_confirm=yes >/tmp/bench-backup-dr.log 2>&1 || { tail -50 /tmp/bench-backup-dr.log; exit 1; }
report "recovery: restore.yml from restic (s)" "$(elapsed "$step")"
report "recovery time, total (s)" "$(elapsed "$start")"
restored=$(docker exec backup-rebuilt docker compose -f /opt/shop/postgres/compose.yaml exec -T postgres \
	psql -XAtq -U shop -d shop -c "SELECT count(*) FROM bench_rows")
report "rows before / after the recovery" "$rows / $restored"
[ "$rows" = "$restored" ]

echo
cat "$RESULTS"
