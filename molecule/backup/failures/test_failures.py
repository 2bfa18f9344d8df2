"""What a user notices when backups go wrong (side effect failures.yml): the drill fails on a
corrupted backup, the job fails on a full backup disk and keeps the earlier backups; each
failure exits non-zero, says why, lands in the system log and pings the /fail URL."""
import json

import pytest

testinfra_hosts = ["ansible://backup-data"]

RECORDS = "/root/backup-test"


@pytest.fixture(scope="module")
def offsite(host, request):
    return host.get_host("ansible://backup-offsite", ansible_inventory=request.config.option.ansible_inventory)


def record(host, name):
    return json.loads(host.file(f"{RECORDS}/{name}.json").content_string)


def errors(host):
    return host.check_output("journalctl -t shop-backup --no-pager -o cat -p err")


@pytest.mark.parametrize("name, reason", [
    ("drill-corrupt", "is damaged: its files do not match SHA256SUMS"),
    ("drill-bad-dump", "pg_restore of /var/backups/shop/postgres/"),
])
def test_the_drill_fails_on_a_bad_backup(host, name, reason):
    result = record(host, name)
    assert result["rc"] != 0 and reason in result["stderr"], result
    assert "drill FAILED: " in errors(host) and reason in errors(host), errors(host)


def test_a_disk_that_fills_while_writing_fails_the_job_and_keeps_the_earlier_backups(host):
    assert record(host, "disk-first")["rc"] == 0
    result = record(host, "disk-full-write")
    assert result["rc"] != 0, result
    assert "No space left on device" in result["stderr"], result
    assert "backup FAILED: could not dump database shop" in errors(host)
    before = host.file(f"{RECORDS}/disk-before.txt").content_string
    assert before.count("Z\n") == 3, before  # one backup of each kind
    assert host.file(f"{RECORDS}/disk-after-write.txt").content_string == before, "backups changed"


def test_a_disk_without_room_for_the_estimate_fails_before_writing(host):
    result = record(host, "disk-full-check")
    assert result["rc"] != 0, result
    assert "not enough free space in /var/backups/shop" in result["stderr"], result
    assert "backup FAILED: not enough free space" in errors(host)
    before = host.file(f"{RECORDS}/disk-before.txt").content_string
    assert host.file(f"{RECORDS}/disk-after-check.txt").content_string == before, "backups changed"


def test_failures_are_pinged_with_the_reason(offsite):
    pings = [json.loads(line) for line in offsite.file("/srv/pings.log").content_string.splitlines()]
    failed = [ping for ping in pings if ping["path"].endswith("/fail")]
    assert {ping["path"] for ping in failed} == {"/ping/drill/fail", "/ping/backup/fail"}, pings
    assert any("not enough free space" in ping["body"] for ping in failed), failed
