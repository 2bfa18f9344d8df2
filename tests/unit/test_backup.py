"""The backup role without a test host: the files it renders for edge-case inputs, its input
validation, and the backup script itself, run against stand-ins for docker, restic, curl and
logger that record what they are asked. The script's own logic (partial names, checksums,
free space, lock, retention, drill, restore choices, offsite calls, loud failures) is real."""
from conftest import validate_role_cases
import fcntl
import hashlib
import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "backup"
SFTP_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"


def trusted(value):
    """Role defaults and vars are trusted templates in a play; mark them so here too."""
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, list):
        return [trusted(item) for item in value]
    if isinstance(value, dict):
        return {key: trusted(item) for key, item in value.items()}
    return value


def render(template, **inputs):
    variables = {
        **trusted(yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())),
        **trusted(yaml.safe_load((ROLE / "vars" / "main.yml").read_text())),
        "backup_stack_name": "shop",
        "inventory_hostname": "data1",
        "ansible_managed": "Ansible managed",
        **inputs,
    }
    templar = Templar(loader=DataLoader(), variables=variables)
    return templar.template(trust_as_template((ROLE / "templates" / template).read_text()),
                            escape_backslashes=False)


def bash_values(text, names):
    """Sources a rendered settings file in bash and returns the named variables: a string, or a
    list for the bash arrays."""
    script = text + "\n" + "\n".join(
        f'printf "%s\\0" {name} "$(declare -p {name} | cut -c10)" "${{#{name}[@]}}" "${{{name}[@]}}"'
        for name in names)
    fields = subprocess.run(["bash", "-c", script], capture_output=True, check=True).stdout.split(b"\0")[:-1]
    values = {}
    while fields:
        name, kind, count = fields[0].decode(), fields[1].decode(), int(fields[2])
        items = [field.decode() for field in fields[3:3 + count]]
        values[name] = items if kind == "a" else items[0]
        fields = fields[3 + count:]
    return values


# -- rendered files -------------------------------------------------------------------------

def test_settings_survive_any_characters_and_fill_in_the_defaults():
    conf = render("backup.conf.j2", backup_ping_url="https://hc.example/ping/a'b\"c$d",
                  backup_postgres_databases=["shop", "shop-archive"],
                  backup_redis_instances=[{"name": "redis"}, {"name": "redis-cache", "port": 6380}],
                  backup_volumes=["shop-app-media"],
                  backup_drill_expected_tables=[{"name": "orders"},
                                                {"name": "audit.events", "min_rows": 0, "database": "shop-archive"}],
                  backup_reserved_space_mb=3)
    values = bash_values(conf, ["PING_URL", "POSTGRES_DATABASES", "REDIS_INSTANCES", "VOLUMES", "DRILL_CHECKS",
                                "RESERVED_BYTES", "RESTIC_ENABLED", "POSTGRES_ENABLED", "RESTIC_KEEP"])
    assert values["PING_URL"] == "https://hc.example/ping/a'b\"c$d"
    assert values["POSTGRES_DATABASES"] == ["shop", "shop-archive"]
    assert values["REDIS_INSTANCES"] == ["redis 6379 /opt/shop/redis/compose.yaml",
                                         "redis-cache 6380 /opt/shop/redis-cache/compose.yaml"]
    assert values["VOLUMES"] == ["shop-app-media"]
    assert values["DRILL_CHECKS"] == ["shop orders 1", "shop-archive audit.events 0"]
    assert values["RESERVED_BYTES"] == str(3 * 1024 * 1024)
    assert (values["RESTIC_ENABLED"], values["POSTGRES_ENABLED"]) == ("0", "1")
    assert values["RESTIC_KEEP"] == ["--keep-daily", "7", "--keep-weekly", "4", "--keep-monthly", "6"]


def test_restic_keeps_its_own_retention_and_sftp_gets_its_ssh_settings():
    inputs = {"backup_restic_enabled": True, "backup_restic_repository": "sftp:restic@offsite:/srv/restic/shop",
              "backup_restic_keep_hourly": 24, "backup_restic_keep_monthly": 0}
    values = bash_values(render("backup.conf.j2", **inputs), ["RESTIC_KEEP", "RESTIC_OPTIONS", "RESTIC_HOST"])
    assert values["RESTIC_KEEP"] == ["--keep-hourly", "24", "--keep-daily", "7", "--keep-weekly", "4"]
    assert values["RESTIC_OPTIONS"] == ["-o", "sftp.args=-F /etc/shop-backup/ssh_config"]
    assert values["RESTIC_HOST"] == "data1"
    ssh = render("ssh_config.j2", **inputs)
    assert "IdentityFile /etc/shop-backup/ssh_key" in ssh and "StrictHostKeyChecking accept-new" in ssh
    pinned = render("ssh_config.j2", **inputs, backup_restic_sftp_known_hosts=["offsite ssh-ed25519 AAAA"])
    assert "StrictHostKeyChecking yes" in pinned
    env = render("restic.env.j2", **inputs)
    assert "AWS_" not in env and "RESTIC_PASSWORD_FILE=/etc/shop-backup/restic-password" in env


def test_s3_credentials_go_to_the_environment_file_only():
    inputs = {"backup_restic_enabled": True, "backup_restic_repository": "s3:https://s3.example.com/b/shop",
              "backup_restic_s3_access_key_id": "AKID", "backup_restic_s3_secret_access_key": "se'cret"}
    env = bash_values(render("restic.env.j2", **inputs), ["AWS_SECRET_ACCESS_KEY", "RESTIC_REPOSITORY"])
    assert env == {"AWS_SECRET_ACCESS_KEY": "se'cret", "RESTIC_REPOSITORY": "s3:https://s3.example.com/b/shop"}
    assert bash_values(render("backup.conf.j2", **inputs), ["RESTIC_OPTIONS"])["RESTIC_OPTIONS"] == []
    assert "se'cret" not in render("backup.conf.j2", **inputs)


@pytest.mark.parametrize("inputs, jobs", [
    ({}, ["30 2 * * * root /usr/local/sbin/shop-backup backup",
          "30 4 * * 0 root /usr/local/sbin/shop-backup drill"]),
    # A cache host: no dump to drill.
    ({"backup_postgres_enabled": False, "backup_schedule": "15 * * * *"},
     ["15 * * * * root /usr/local/sbin/shop-backup backup"]),
    ({"backup_drill_enabled": False, "backup_restic_enabled": True},
     ["30 2 * * * root /usr/local/sbin/shop-backup backup",
      "30 5 * * 0 root /usr/local/sbin/shop-backup check"]),
])
def test_cron_runs_the_script_for_each_job(inputs, jobs):
    lines = [line for line in render("cron.j2", **inputs).splitlines() if line and not line.startswith("#")]
    assert lines[:2] == ["SHELL=/bin/bash", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    assert lines[2:] == jobs


def test_the_script_is_valid_bash():
    script = render("backup.sh.j2")
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)
    assert script.startswith("#!/bin/bash\n# Ansible managed\n")
    assert ". /etc/shop-backup/backup.conf\n" in script


# -- validation -----------------------------------------------------------------------------

CASES = {
    "valid": ({}, None),
    "valid_offsite": ({"backup_restic_enabled": True, "backup_restic_repository": "sftp:u@h:/r",
                       "backup_restic_password": "pw", "backup_restic_sftp_private_key": SFTP_KEY}, None),
    "valid_hourly": ({"backup_schedule": "5 * * * *", "backup_keep_hourly": 24}, None),
    "more_than_hourly": ({"backup_schedule": "*/10 * * * *"}, ["backup_schedule", "at most hourly"]),
    "four_fields": ({"backup_drill_schedule": "0 4 * *"}, ["backup_drill_schedule"]),
    "keeps_nothing": ({"backup_keep_daily": 0, "backup_keep_weekly": 0, "backup_keep_monthly": 0},
                      ["backup_keep_daily", "at least one"]),
    "relative_dir": ({"backup_dir": "backups"}, ["backup_dir"]),
    "root_dir": ({"backup_dir": "/"}, ["backup_dir"]),
    "long_database": ({"backup_postgres_databases": ["d" * 49]}, ["backup_postgres_databases", "48"]),
    "bad_instance": ({"backup_redis_instances": [{"name": "redis", "port": 99999}]}, ["backup_redis_instances"]),
    "bad_table": ({"backup_drill_expected_tables": [{"name": "orders; DROP TABLE x"}]},
                  ["backup_drill_expected_tables"]),
    "table_of_other_db": ({"backup_drill_expected_tables": [{"name": "orders", "database": "other"}]},
                          ["backup_drill_expected_tables"]),
    "bad_ping": ({"backup_ping_url": "hc-ping.com/uuid"}, ["backup_ping_url"]),
    "no_restic_password": ({"backup_restic_enabled": True, "backup_restic_repository": "/srv/restic"},
                           ["backup_restic_password", "vault_backup_restic_password"]),
    "sftp_without_key": ({"backup_restic_enabled": True, "backup_restic_repository": "sftp:u@h:/r",
                          "backup_restic_password": "pw"}, ["backup_restic_sftp_private_key"]),
    "unsupported_repository": ({"backup_restic_enabled": True, "backup_restic_repository": "b2:bucket",
                                "backup_restic_password": "pw"}, ["backup_restic_repository"]),
    "bad_point": ({"backup_restore_point": "yesterday"}, ["backup_restore_point", "latest"]),
    "restic_restore_without_restic": ({"backup_restore_from": "restic"}, ["backup_restore_from"]),
}


@pytest.fixture(scope="module")
def validation(tmp_path_factory):
    return validate_role_cases("backup", CASES, {}, tmp_path_factory.mktemp("validate"))


@pytest.mark.parametrize("case", CASES)
def test_validation_names_the_variable_to_fix(validation, case):
    expected = CASES[case][1]
    if expected is None:
        assert validation[case] is None, validation[case]
    else:
        assert validation[case] is not None, f"{case} passed validation"
        for text in expected:
            assert text in validation[case]


# -- the script, against stand-ins ----------------------------------------------------------

FAKE_DOCKER = r'''
import json, os, sys
from pathlib import Path

state = Path(os.environ["FAKE_STATE"])
args = sys.argv[1:]
stdin = b"" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.buffer.read()
with open(state / "calls.log", "a") as log:
    log.write(json.dumps({"args": args, "stdin": stdin.decode(errors="replace")}) + "\n")

def fail(message, code=1):
    sys.stderr.write(message + "\n")
    sys.exit(code)

def out(data):
    sys.stdout.buffer.write(data if isinstance(data, bytes) else data.encode())

tables = json.loads((state / "tables.json").read_text()) if (state / "tables.json").exists() else {"orders": 3}
down = (state / "down").read_text().split() if (state / "down").exists() else []

if args[:2] == ["volume", "inspect"]:
    path = state / "volumes" / args[-1]
    if not path.is_dir():
        fail(f"Error: No such volume: {args[-1]}")
    out(f"{path}\n")
elif args[:2] == ["volume", "create"]:
    (state / "volumes" / args[-1]).mkdir(parents=True)
elif args[0] == "ps":
    pass
elif args[0] == "compose":
    rest = args[3:]
    if rest[0] == "ps":
        if rest[-1] not in down:
            out("0123456789ab\n")
    elif rest[0] in ("stop", "up"):
        pass
    elif rest[0] == "run":
        out("3\n")
    elif rest[0] == "exec":
        command = rest[3:]
        program = command[0]
        if program == "pg_dump":
            if (state / "pg_dump_fails").exists():
                fail("pg_dump: error: connection to server failed")
            out((state / "dump").read_bytes() if (state / "dump").exists() else b"PGDMP fake custom dump")
        elif program == "pg_dumpall":
            out("CREATE ROLE shop;\nALTER ROLE shop WITH SUPERUSER PASSWORD 'old';\n"
                "CREATE ROLE reporting;\nALTER ROLE reporting WITH LOGIN;\n")
        elif program == "pg_restore":
            if "--list" in command:
                if not stdin.startswith(b"PGDMP"):
                    fail("pg_restore: error: input file does not appear to be a valid archive")
            elif b"CORRUPT" in stdin:
                fail("pg_restore: error: could not read from input file: end of file")
        elif program == "psql":
            sql = command[command.index("-c") + 1] if "-c" in command else stdin.decode()
            if "pg_database_size" in sql:
                out("1000\n")
            elif "FROM pg_tables" in sql:
                out(f"{len(tables)}\n")
            elif sql.startswith("SELECT count(*) FROM "):
                table = sql.split()[-1]
                if table not in tables:
                    fail(f'ERROR:  relation "{table}" does not exist')
                out(f"{tables[table]}\n")
        elif program == "sh":
            script = command[2]
            if "BGSAVE" in script:
                out(b"REDIS0012 fake snapshot")
            elif "used_memory" in script:
                out("500\n")
        else:
            fail(f"fake docker: unexpected exec {command}")
    else:
        fail(f"fake docker: unexpected compose {rest}")
else:
    fail(f"fake docker: unexpected {args}")
'''

FAKE_RESTIC = r'''
import json, os, shutil, sys
from pathlib import Path

state = Path(os.environ["FAKE_STATE"])
args = sys.argv[1:]
with open(state / "restic.log", "a") as log:
    log.write(json.dumps({"args": args, "repository": os.environ.get("RESTIC_REPOSITORY"),
                          "password_file": os.environ.get("RESTIC_PASSWORD_FILE")}) + "\n")
command = [arg for arg in args if not arg.startswith("-")][0] if args else ""
if command == "snapshots":
    sys.stdout.write((state / "snapshots.json").read_text())
elif command == "restore":
    snapshot = args[args.index("restore") + 1]
    target = Path(args[args.index("--target") + 1])
    source = state / "repository" / snapshot
    for path in source.rglob("*"):
        if path.is_file():
            dest = target / path.relative_to(source)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, dest)
'''


class Host:
    """A temporary 'server': the rendered script and settings, stand-in commands first on PATH."""

    def __init__(self, tmp, **inputs):
        self.tmp = tmp
        self.state = tmp / "state"
        self.backups = tmp / "backups"
        (self.state / "volumes").mkdir(parents=True)
        bin_dir = tmp / "bin"
        bin_dir.mkdir()
        for name, code in {"docker": FAKE_DOCKER, "restic": FAKE_RESTIC}.items():
            (bin_dir / name).write_text(f"#!{sys.executable}\n{code}")
        # Like logger: the message from the arguments after --, else each line of stdin.
        (bin_dir / "logger").write_text(
            f'#!/bin/bash\nopts="${{*%% -- *}}"\ncase " $* " in *" -- "*) echo "$*" ;; *) sed "s/^/$opts -- /" ;; esac'
            f' >> {self.state}/syslog\n')
        # Like curl -K - --data-binary @FILE: records the arguments, the config read from stdin
        # (the URL) and the body.
        (bin_dir / "curl").write_text(
            f'#!/bin/bash\n{{ echo "$*"; cat; for a in "$@"; do [[ $a != @* ]] || cat "${{a#@}}"; done; }}'
            f' >> {self.state}/pings\n')
        for stub in bin_dir.iterdir():
            stub.chmod(0o755)
        self.path = f"{bin_dir}:{os.environ['PATH']}"
        self.config = tmp / "backup.conf"
        self.script = tmp / "shop-backup"
        self.lock = tmp / "backup.lock"
        (tmp / "restic.env").write_text("RESTIC_REPOSITORY=/srv/restic\nRESTIC_PASSWORD_FILE=/etc/pw\n")
        self.inputs = {"backup_dir": str(self.backups), "__backup_config_file": str(self.config),
                       "__backup_lock_file": str(self.lock), "__backup_config_dir": str(tmp),
                       "backup_reserved_space_mb": 0, "backup_ping_url": "https://hc.example/ping/uuid-1",
                       **inputs}
        self.script.write_text(render("backup.sh.j2", **self.inputs))
        self.script.chmod(0o755)
        self.config.write_text(render("backup.conf.j2", **self.inputs))

    def run(self, *args, timeout=60):
        env = dict(os.environ, PATH=self.path, FAKE_STATE=str(self.state))
        return subprocess.run([str(self.script), *args], env=env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=timeout)

    def backup(self):
        result = self.run("backup")
        assert result.returncode == 0, result.stderr
        return sorted(p.name for p in (self.backups / "postgres").iterdir())[-1]

    def names(self, kind="postgres"):
        return sorted(p.name for p in (self.backups / kind).iterdir()) if (self.backups / kind).exists() else []

    def make(self, kind, name, files=None):
        """An earlier complete backup, as the script leaves one."""
        directory = self.backups / kind / name
        directory.mkdir(parents=True)
        for file, content in (files or {"shop.dump": b"PGDMP older dump"}).items():
            (directory / file).write_bytes(content)
        (directory / "SHA256SUMS").write_text("".join(
            f"{hashlib.sha256((directory / f).read_bytes()).hexdigest()}  {f}\n" for f in sorted(files or ["shop.dump"])))
        return directory

    def calls(self):
        log = self.state / "calls.log"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def execs(self, program):
        return [call for call in self.calls() if call["args"][:1] == ["compose"] and program in call["args"]]

    def syslog(self):
        return (self.state / "syslog").read_text() if (self.state / "syslog").exists() else ""

    def pings(self):
        return (self.state / "pings").read_text() if (self.state / "pings").exists() else ""


@pytest.fixture
def host(tmp_path):
    return Host(tmp_path, backup_redis_instances=[])


def now_stamp():
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def test_a_backup_is_complete_checksummed_and_reported(tmp_path):
    host = Host(tmp_path, backup_volumes=["shop-app-media"])
    media = host.state / "volumes" / "shop-app-media"
    media.mkdir()
    (media / "upload.txt").write_text("an upload")
    result = host.run("backup")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == "", "cron would mail a run that succeeded"
    name = host.names()[0]
    assert host.names("redis") == host.names("volumes") == [name]
    assert name[:11] == now_stamp()[:11]
    files = {kind: sorted(p.name for p in (host.backups / kind / name).iterdir())
             for kind in ("postgres", "redis", "volumes")}
    assert files == {"postgres": ["SHA256SUMS", "globals.sql", "shop.dump"],
                     "redis": ["SHA256SUMS", "redis.rdb"],
                     "volumes": ["SHA256SUMS", "shop-app-media.tar.gz"]}
    for kind in files:
        check = subprocess.run(["sha256sum", "--strict", "-c", "SHA256SUMS"], cwd=host.backups / kind / name)
        assert check.returncode == 0
        assert not list((host.backups / kind).glob("*.partial"))
    assert (host.backups / "postgres" / name / "shop.dump").read_bytes() == b"PGDMP fake custom dump"
    listing = subprocess.run(["tar", "-tzf", host.backups / "volumes" / name / "shop-app-media.tar.gz"],
                             capture_output=True, text=True).stdout
    assert "./upload.txt" in listing.splitlines()
    assert oct((host.backups / "postgres" / name / "shop.dump").stat().st_mode & 0o777) == "0o600"
    assert f"-t shop-backup -p user.info -- backup succeeded: backup {name} of postgres redis volumes" in host.syslog()
    pings = host.pings()
    assert 'url = "https://hc.example/ping/uuid-1/start"' in pings
    assert 'url = "https://hc.example/ping/uuid-1"' in pings
    assert "uuid-1" not in "".join(line.split('url = ')[0] for line in pings.splitlines()), "URL in curl's arguments"


def test_a_failed_dump_leaves_no_partial_backup_and_is_loud(host):
    earlier = host.make("postgres", "20240101T020000Z").name
    (host.state / "pg_dump_fails").touch()
    result = host.run("backup")
    assert result.returncode != 0
    assert host.names() == [earlier]
    assert "could not dump database shop" in result.stderr
    assert "connection to server failed" in result.stderr, "the cause is not shown"
    assert "-p user.err -- backup FAILED: could not dump database shop" in host.syslog()
    assert 'url = "https://hc.example/ping/uuid-1/fail"' in host.pings()
    assert "connection to server failed" in host.pings(), "the ping carries no log"


def test_no_space_fails_before_writing_and_keeps_the_earlier_backups(tmp_path):
    host = Host(tmp_path, backup_redis_instances=[], backup_reserved_space_mb=1024 ** 3)
    earlier = [host.make("postgres", name).name for name in ("20240101T020000Z", "20240102T020000Z")]
    result = host.run("backup")
    assert result.returncode != 0
    assert "not enough free space" in result.stderr and "earlier backups are kept" in result.stderr
    assert host.names() == earlier
    assert not host.execs("pg_dump"), "it dumped although the disk was full"
    assert "backup FAILED: not enough free space" in host.syslog()


def test_retention_keeps_the_newest_of_each_day_week_and_month(tmp_path):
    host = Host(tmp_path, backup_redis_instances=[], backup_keep_daily=2, backup_keep_weekly=3,
                backup_keep_monthly=4)
    for name in ["20231215T020000Z", "20240115T020000Z", "20240220T020000Z", "20240227T020000Z",
                 "20240227T140000Z", "20240228T020000Z", "20240229T020000Z", "20240301T020000Z"]:
        host.make("postgres", name)
    new = host.backup()
    # Days: the new one, 03-01. ISO weeks: new, 03-01 (week 9), 02-20 (week 8). Months: new,
    # 03-01 (March), 02-29 (newest of February), 01-15 (January).
    assert host.names() == ["20240115T020000Z", "20240220T020000Z", "20240229T020000Z", "20240301T020000Z", new]


def test_hourly_retention_for_hourly_backups(tmp_path):
    host = Host(tmp_path, backup_redis_instances=[], backup_keep_hourly=2, backup_keep_daily=1,
                backup_keep_weekly=0, backup_keep_monthly=0)
    for name in ["20240301T010000Z", "20240301T020000Z", "20240301T021500Z", "20240301T030000Z"]:
        host.make("postgres", name)
    new = host.backup()
    assert host.names() == ["20240301T030000Z", new]


def test_nothing_is_deleted_when_the_backup_fails(host):
    names = [host.make("postgres", f"202401{day:02}T020000Z").name for day in range(1, 20)]
    (host.state / "pg_dump_fails").touch()
    assert host.run("backup").returncode != 0
    assert host.names() == names


def test_a_second_run_waits_for_the_lock_then_fails(tmp_path):
    host = Host(tmp_path, backup_redis_instances=[], backup_lock_timeout=1)
    with open(host.lock, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = host.run("backup")
    assert result.returncode != 0 and "another run of shop-backup holds" in result.stderr
    assert host.names() == []
    assert "backup FAILED: another run" in host.syslog()
    assert host.run("backup").returncode == 0


def test_stale_partials_of_a_crashed_run_are_removed(host):
    (host.backups / "postgres" / "20240101T020000Z.partial").mkdir(parents=True)
    host.backup()
    assert not list((host.backups / "postgres").glob("*.partial"))


def test_a_volume_the_app_has_not_created_yet_is_archived_empty(tmp_path):
    # A release backup on the first deploy runs before the app has made its uploads volume.
    host = Host(tmp_path, backup_postgres_enabled=False, backup_redis_instances=[],
                backup_volumes=["shop-app-media"])
    result = host.run("backup")
    assert result.returncode == 0, result.stderr
    [name] = host.names("volumes")
    archive = host.backups / "volumes" / name / "shop-app-media.tar.gz"
    assert subprocess.run(["tar", "-tzf", archive], capture_output=True, text=True).stdout.split() == ["./"]
    assert "docker volume shop-app-media does not exist (yet)" in host.syslog()
    assert host.run("restore", "volumes").returncode == 0
    assert (host.state / "volumes" / "shop-app-media").is_dir(), "the restore did not create the volume"


def test_the_drill_restores_into_a_scratch_database_and_checks_the_tables(tmp_path):
    host = Host(tmp_path, backup_redis_instances=[], backup_drill_ping_url="https://hc.example/drill",
                backup_drill_expected_tables=[{"name": "orders", "min_rows": 3}])
    host.backup()
    result = host.run("drill")
    assert result.returncode == 0, result.stderr
    statements = [call["args"][-1] for call in host.execs("psql") if "-c" in call["args"]]
    assert 'CREATE DATABASE "shop_drill" OWNER "shop" TEMPLATE template0' in statements
    assert "SELECT count(*) FROM orders" in statements
    assert statements[-1] == 'DROP DATABASE "shop_drill"'
    [restore] = [call for call in host.execs("pg_restore") if "--list" not in call["args"]]
    assert "shop_drill" in restore["args"]
    assert restore["stdin"] == "PGDMP fake custom dump"
    assert "drill succeeded: backup" in host.syslog()
    assert 'url = "https://hc.example/drill"' in host.pings()


@pytest.mark.parametrize("damage, message", [
    ("corrupt", "is damaged: its files do not match SHA256SUMS"),
    ("corrupt_with_checksum", "pg_restore of"),
    ("too_few_rows", "table orders in the backup of database shop has 2 rows, fewer than the 3 expected"),
    ("missing_table", "the backup of database shop has no table orders"),
    ("stale", "hours old"),
])
def test_the_drill_fails_loudly_on_a_bad_backup(tmp_path, damage, message):
    host = Host(tmp_path, backup_redis_instances=[], backup_drill_ping_url="https://hc.example/drill",
                backup_drill_expected_tables=[{"name": "orders", "min_rows": 3}])
    name = host.backup()
    dump = host.backups / "postgres" / name / "shop.dump"
    if damage.startswith("corrupt"):
        dump.write_bytes(b"PGDMP CORRUPT")
        if damage == "corrupt_with_checksum":
            sums = host.backups / "postgres" / name / "SHA256SUMS"
            sums.write_text(subprocess.run(["sha256sum", "globals.sql", "shop.dump"], cwd=dump.parent,
                                           capture_output=True, text=True, check=True).stdout)
    elif damage == "too_few_rows":
        (host.state / "tables.json").write_text('{"orders": 2}')
    elif damage == "missing_table":
        (host.state / "tables.json").write_text('{"customers": 5}')
    else:
        (host.backups / "postgres" / name).rename(host.backups / "postgres" / "20240101T020000Z")
    result = host.run("drill")
    assert result.returncode != 0
    assert message in result.stderr
    assert "-p user.err -- drill FAILED: " in host.syslog() and message in host.syslog()
    assert 'url = "https://hc.example/drill/fail"' in host.pings()
    if damage in ("corrupt_with_checksum", "too_few_rows", "missing_table"):
        statements = [call["args"][-1] for call in host.execs("psql") if "-c" in call["args"]]
        assert statements[-1] == 'DROP DATABASE IF EXISTS "shop_drill" WITH (FORCE)', "scratch database left behind"


def test_restore_picks_the_newest_backup_at_or_before_the_point(host):
    for name in ("20240101T020000Z", "20240102T020000Z", "20240103T020000Z"):
        host.make("postgres", name)
    picked = {point: host.run("verify", "postgres", point).stdout.strip()
              for point in ("latest", "20240102T020000Z", "20240102T235959Z")}
    assert picked == {"latest": "20240103T020000Z", "20240102T020000Z": "20240102T020000Z",
                      "20240102T235959Z": "20240102T020000Z"}
    result = host.run("verify", "postgres", "20231231T000000Z")
    assert result.returncode != 0 and "no postgres backup at or before 20231231T000000Z" in result.stderr
    assert host.run("verify", "postgres", "yesterday").returncode == 2
    assert host.run("verify", "redis", "latest").returncode == 2, "redis is not backed up on this host"


def test_restore_swaps_in_a_fully_restored_database_and_keeps_the_old_one(host):
    name = host.backup()
    result = host.run("restore", "postgres", "latest")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == name
    [globals_call] = [call for call in host.execs("psql") if "-d" in call["args"] and "ROLE" in call["stdin"]]
    assert "reporting" in globals_call["stdin"] and "ROLE shop" not in globals_call["stdin"], (
        "the deployer's own user must keep its current password")
    restores = [call for call in host.execs("pg_restore") if "--list" not in call["args"]]
    assert [call["args"][call["args"].index("-d") + 1] for call in restores] == ["shop_restoring"]
    [swap] = [call for call in host.execs("psql") if "RENAME" in call["stdin"]]
    assert 'ALTER DATABASE "shop_restoring" RENAME TO "shop";' in swap["stdin"]
    assert "'shop_before_restore'" in swap["stdin"]
    assert f"restore postgres succeeded: postgres restored from backup {name}" in host.syslog()


def test_a_failed_restore_leaves_the_database_alone(host):
    name = host.backup()
    dump = host.backups / "postgres" / name / "shop.dump"
    dump.write_bytes(b"PGDMP CORRUPT")
    (dump.parent / "SHA256SUMS").write_text(subprocess.run(
        ["sha256sum", "globals.sql", "shop.dump"], cwd=dump.parent, capture_output=True, text=True).stdout)
    result = host.run("restore", "postgres", "latest")
    assert result.returncode != 0 and "pg_restore of" in result.stderr
    assert not [call for call in host.execs("psql") if "RENAME" in call["stdin"]]
    statements = [call["args"][-1] for call in host.execs("psql") if "-c" in call["args"]]
    assert statements[-1] == 'DROP DATABASE IF EXISTS "shop_restoring" WITH (FORCE)'


def test_redis_and_volumes_restore_through_the_stopped_services(tmp_path):
    host = Host(tmp_path, backup_postgres_enabled=False, backup_volumes=["shop-app-media"])
    media = host.state / "volumes" / "shop-app-media"
    media.mkdir()
    (media / "kept.txt").write_text("from the backup")
    host.run("backup")
    (media / "kept.txt").write_text("changed later")
    (media / "new.txt").write_text("written after the backup")
    assert host.run("restore", "volumes").returncode == 0
    assert sorted(p.name for p in media.iterdir()) == ["kept.txt"]
    assert (media / "kept.txt").read_text() == "from the backup"
    result = host.run("restore", "redis")
    assert result.returncode == 0, result.stderr
    compose = [call["args"][3:] for call in host.calls() if call["args"][:1] == ["compose"]]
    steps = [args[0] for args in compose if args[0] in ("stop", "run", "up")]
    assert steps == ["stop", "run", "up"]
    [run] = [call for call in host.calls() if call["args"][3:4] == ["run"]]
    assert run["stdin"] == "REDIS0012 fake snapshot"


def test_offsite_copy_and_retention_after_each_backup(tmp_path):
    host = Host(tmp_path, backup_redis_instances=[], backup_restic_enabled=True,
                backup_restic_repository="sftp:restic@offsite:/srv/restic", backup_restic_keep_daily=3)
    name = host.backup()
    calls = [json.loads(line) for line in (host.state / "restic.log").read_text().splitlines()]
    assert [call["args"][2] for call in calls] == ["backup", "forget"]
    assert calls[0]["args"][:2] == ["-o", f"sftp.args=-F {tmp_path}/ssh_config"]
    assert calls[0]["args"][-7:] == ["--host", "data1", "--tag", "shop", "--tag", "postgres",
                                     str(host.backups / "postgres" / name)]
    assert calls[1]["args"][3:] == ["--retry-lock", "30m", "--tag", "shop,postgres", "--group-by", "tags",
                                    "--keep-daily", "3", "--keep-weekly", "4", "--keep-monthly", "6", "--prune"]
    assert calls[0]["repository"] == "/srv/restic" and calls[0]["password_file"] == "/etc/pw"


def test_fetch_takes_the_chosen_snapshot_from_the_repository(tmp_path):
    host = Host(tmp_path, backup_redis_instances=[], backup_restic_enabled=True,
                backup_restic_repository="/srv/restic")
    snapshots = []
    for snapshot, name in (("aaa", "20240101T020000Z"), ("bbb", "20240102T020000Z")):
        path = f"/var/backups/shop/postgres/{name}"
        snapshots.append({"id": snapshot, "paths": [path]})
        content = f"PGDMP {name}".encode()
        stored = host.state / "repository" / snapshot / path.lstrip("/")
        stored.mkdir(parents=True)
        (stored / "shop.dump").write_bytes(content)
        (stored / "SHA256SUMS").write_text(f"{hashlib.sha256(content).hexdigest()}  shop.dump\n")
    (host.state / "snapshots.json").write_text(json.dumps(snapshots))
    result = host.run("fetch", "postgres", "20240101T120000Z")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "20240101T020000Z"
    assert (host.backups / "postgres" / "20240101T020000Z" / "shop.dump").read_bytes() == b"PGDMP 20240101T020000Z"
    assert host.run("fetch", "postgres", "latest").stdout.strip() == "20240102T020000Z"
    assert host.names() == ["20240101T020000Z", "20240102T020000Z"]
    assert not (host.backups / "postgres" / ".fetch").exists()


def test_usage_and_unknown_commands(host):
    result = host.run("bogus")
    assert result.returncode == 2 and "backup" in result.stderr and "restore KIND [POINT]" in result.stderr
    result = host.run("check")
    assert result.returncode == 2 and "no restic repository" in result.stderr


def test_list_shows_the_local_backups(host):
    host.make("postgres", "20240101T020000Z")
    assert host.run("list").stdout.split()[:2] == ["postgres", "20240101T020000Z"]


WIRING = ["backup_postgres_enabled", "backup_postgres_user", "backup_postgres_databases",
          "backup_redis_instances", "backup_volumes", "app_release_backup_command",
          "app_release_backup_host"]


def test_wiring_backs_up_each_kind_of_data_on_the_host_that_holds_it(ansible_vars):
    from test_wiring import MULTI
    inventory = MULTI.replace("stack_name: shop,", "stack_name: shop, app_media_path: /srv/media,")
    hosts = ansible_vars(inventory, WIRING)
    data, app1 = hosts["data1"], hosts["app1"]
    assert data["backup_postgres_enabled"] is True
    assert (data["backup_postgres_user"], data["backup_postgres_databases"]) == ("shop", ["shop"])
    assert data["backup_redis_instances"] == [{"name": "redis", "port": 6379}]
    assert data["backup_volumes"] == [] and app1["backup_volumes"] == ["shop-app-media"]
    for name in ("app1", "app2", "worker1", "lb1"):
        assert hosts[name]["backup_postgres_enabled"] is False and hosts[name]["backup_redis_instances"] == []
    assert hosts["app2"]["backup_volumes"] == []
    # The release host does not hold the database: its hook runs the db host's backup job.
    assert app1["app_release_backup_command"].strip() == "/usr/local/sbin/shop-backup backup"
    assert app1["app_release_backup_host"] == "data1"


def test_a_single_server_backs_up_before_each_release_on_itself(ansible_vars):
    from test_wiring import SINGLE
    vps = ansible_vars(SINGLE, WIRING)["vps"]
    assert vps["backup_postgres_enabled"] is True and vps["backup_volumes"] == []
    assert vps["backup_redis_instances"] == [{"name": "redis", "port": 6379}]
    assert vps["app_release_backup_command"].strip() == "/usr/local/sbin/shop-backup backup"
    assert vps["app_release_backup_host"] == "vps"


def test_no_backup_before_releases_when_the_db_host_turns_backups_off(ansible_vars):
    from test_wiring import MULTI
    inventory = MULTI.replace("stack_name: shop,", "stack_name: shop, backup_enabled: false,")
    assert ansible_vars(inventory, WIRING)["app1"]["app_release_backup_command"].strip() == ""
