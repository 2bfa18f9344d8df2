"""What a user notices after restore.yml put the backup back: first on the running stack whose
data volumes were destroyed (side effect restore.yml), then on the same host wiped to a new
server and rebuilt from the offsite copy (side effect disaster.yml). The same tests hold for
both; the ones about the offsite copy check the disaster case where /root/backup-test/disaster
exists."""
import json

import pytest

testinfra_hosts = ["ansible://backup-data"]

SCRIPT = "/usr/local/sbin/shop-backup"
RECORDS = "/root/backup-test"
PROJECTS = ("app", "postgres", "redis")


@pytest.fixture(scope="module")
def offsite(host, request):
    return host.get_host("ansible://backup-offsite", ansible_inventory=request.config.option.ansible_inventory)


@pytest.fixture(scope="module")
def disaster(host):
    return host.file(f"{RECORDS}/disaster").exists


def logs(host):
    """The stack's container logs and the backup job's system log, for failure messages."""
    parts = [host.run("docker compose -f /opt/shop/%s/compose.yaml logs --no-color --tail 40", p).stdout
             for p in PROJECTS]
    parts.append(host.run("journalctl -t shop-backup --no-pager -o cat -n 40").stdout)
    return "\n".join(parts)


def record(host, name):
    return json.loads(host.file(f"{RECORDS}/{name}.json").content_string)


def journal(host, priority="info"):
    return host.check_output("journalctl -t shop-backup --no-pager -o cat -p %s", priority)


def app_get(host, path):
    """GET through the serving web slot, from inside its container: (status, JSON body)."""
    result = host.run(
        'docker compose -f /opt/shop/app/compose.yaml exec -T "web-$(cat /opt/shop/app/web-slot)" python3 -c %s %s',
        "import json, sys, urllib.error, urllib.request\n"
        "try:\n"
        "    answer = urllib.request.urlopen('http://127.0.0.1:8000' + sys.argv[1], timeout=10)\n"
        "except urllib.error.HTTPError as error:\n"
        "    answer = error\n"
        "print(json.dumps([answer.status, json.load(answer)]))\n",
        path,
    )
    assert result.rc == 0, f"{result.stderr}\n{logs(host)}"
    return json.loads(result.stdout)


def redis_get(host, key):
    return host.check_output(
        "docker compose -f /opt/shop/redis/compose.yaml exec -T redis "
        "sh -c 'REDISCLI_AUTH=\"$(cat /run/secrets/redis_password)\" redis-cli GET %s'", key)


def media(host, name):
    directory = host.check_output("docker volume inspect -f '{{ .Mountpoint }}' shop-app-media")
    return host.file(f"{directory}/{name}")


def test_known_rows_are_back_through_the_app(host):
    for note, task in json.loads(host.file(f"{RECORDS}/known.json").content_string).items():
        status, body = app_get(host, f"/tasks/{task}")
        assert status == 200 and body["result"]["note"] == note, f"{note}: {status} {body}\n{logs(host)}"


def test_what_was_written_after_the_backup_is_gone(host):
    for note, task in json.loads(host.file(f"{RECORDS}/after.json").content_string).items():
        status, body = app_get(host, f"/tasks/{task}")
        assert status == 404, f"{note} survived the restore: {body}"
    assert redis_get(host, "backup-test") == "before-backup", logs(host)
    assert media(host, "upload.txt").content_string == "uploaded before the backup\n"
    assert not media(host, "after.txt").exists


def test_the_app_is_healthy_and_ready_after_the_restore(host):
    for service in ("web-a", "worker", "beat"):
        container = host.check_output("docker compose -f /opt/shop/app/compose.yaml ps -q %s", service)
        assert container, f"no {service} container\n{logs(host)}"
        health = host.check_output("docker inspect -f '{{ .State.Health.Status }}' %s", container)
        assert health == "healthy", f"{service} is {health}\n{logs(host)}"
    status, body = app_get(host, "/ready")
    assert status == 200, f"{body}\n{logs(host)}"


def test_the_previous_database_is_kept_as_the_way_back(host):
    databases = host.check_output(
        "docker compose -f /opt/shop/postgres/compose.yaml exec -T postgres "
        "psql -XAtq -U shop -d postgres -c 'SELECT datname FROM pg_database ORDER BY 1'").split()
    assert "shop" in databases and "shop_before_restore" in databases, databases
    assert not [name for name in databases if name.endswith(("_restoring", "_drill"))], databases


def test_the_backup_cron_runs_succeeded_quietly(host):
    for name in ("cron-backup", "cron-drill", "cron-check"):
        result = record(host, name)
        assert result["rc"] == 0, f"{result}\n{logs(host)}"
        # Cron mails whatever a job prints: a job that succeeded prints nothing.
        assert result["stdout"] == result["stderr"] == "", result
    assert "backup succeeded: backup " in journal(host)
    assert "of postgres redis volumes, copied offsite" in journal(host)
    assert "drill succeeded: backup " in journal(host)
    assert "database shop: table task_results has " in journal(host)
    assert "check succeeded: the restic repository is sound" in journal(host)


def test_the_jobs_are_scheduled(host):
    cron = host.file("/etc/cron.d/shop-backup")
    assert (cron.user, cron.mode) == ("root", 0o644)
    jobs = [line for line in cron.content_string.splitlines() if " root " in line]
    assert jobs == ["30 2 * * * root /usr/local/sbin/shop-backup backup",
                    "30 4 * * 0 root /usr/local/sbin/shop-backup drill",
                    "30 5 * * 0 root /usr/local/sbin/shop-backup check"]
    assert host.service("cron").is_running


def test_secrets_stay_in_root_only_files(host):
    settings = host.file("/etc/shop-backup")
    assert (settings.user, settings.mode) == ("root", 0o700)
    for name in ("backup.conf", "restic-password", "restic.env", "ssh_key", "ssh_config"):
        secret = host.file(f"/etc/shop-backup/{name}")
        assert (secret.user, secret.mode) == ("root", 0o600), name
    assert host.file("/etc/shop-backup/restic-password").content_string == "test-only restic password"
    for path in ("/etc/cron.d/shop-backup", SCRIPT):
        assert "test-only restic password" not in host.file(path).content_string


def test_every_local_backup_is_complete_and_checksummed(host):
    backups = host.file("/var/backups/shop")
    assert backups.mode == 0o700
    for kind, files in (("postgres", {"shop.dump", "globals.sql"}), ("redis", {"redis.rdb"}),
                        ("volumes", {"shop-app-media.tar.gz"})):
        names = host.file(f"/var/backups/shop/{kind}").listdir()
        assert names and not [name for name in names if not name.endswith("Z")], names
        for name in names:
            directory = f"/var/backups/shop/{kind}/{name}"
            assert set(host.file(directory).listdir()) == files | {"SHA256SUMS"}, directory
            check = host.run("cd %s && sha256sum --strict -c SHA256SUMS", directory)
            assert check.rc == 0, check.stdout + check.stderr


def test_the_offsite_copy_is_encrypted(host, offsite):
    snapshots = json.loads(host.check_output(f"{SCRIPT} restic snapshots --json"))
    assert {"postgres", "redis", "volumes"} <= {tag for s in snapshots for tag in s["tags"]}, snapshots
    assert offsite.file("/srv/restic/shop/config").exists
    # The roles dump and the Redis snapshot hold these in plain text; the repository must not.
    for plain in ("CREATE ROLE", "backup-test", "uploaded before the backup"):
        found = offsite.run("grep -rl %s /srv/restic/shop", plain)
        assert found.rc == 1, f"{plain!r} readable in the repository: {found.stdout}"


def test_success_is_pinged_with_the_log(offsite):
    pings = [json.loads(line) for line in offsite.file("/srv/pings.log").content_string.splitlines()]
    paths = [ping["path"] for ping in pings]
    jobs = ("/ping/backup", "/ping/drill", "/ping/check")
    assert all(f"{job}/start" in paths for job in jobs), paths
    finished = [ping for ping in pings if ping["path"] in jobs]
    assert {ping["path"] for ping in finished} == set(jobs), paths
    assert any("backup succeeded" in ping["body"] for ping in finished), finished


def test_disaster_recovery_came_from_the_offsite_copy(host, disaster):
    if not disaster:
        pytest.skip("the host is rebuilt from the offsite copy by disaster.yml")
    log = journal(host)
    for kind in ("postgres", "redis", "volumes"):
        assert f"fetch {kind} succeeded: {kind} backup " in log, log
        assert f"restore {kind} succeeded: {kind} restored from backup " in log, log
