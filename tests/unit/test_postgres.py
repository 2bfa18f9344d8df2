"""The postgres role without a test host: the settings it derives from the memory and CPU
limits, the postgresql.conf and compose.yaml it renders for edge-case inputs, and the
validation that stops bad input before anything changes, naming the variable."""
from conftest import validate_role_cases
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "postgres"
VENV_BIN = Path(sys.executable).parent
FACTS = {"ansible_facts": {"memtotal_mb": 4096, "processor_vcpus": 2}}


def trusted(value):
    """Role defaults and vars are trusted templates in a play; mark them so here too."""
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return {key: trusted(item) for key, item in value.items()}
    return value


def templar(**inputs):
    variables = {
        **trusted(yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())),
        **FACTS,
        "postgres_password": "secret",
        **inputs,
        **trusted(yaml.safe_load((ROLE / "vars" / "main.yml").read_text())),
        "ansible_managed": "Ansible managed",
    }
    return Templar(loader=DataLoader(), variables=variables)


def render(template, **inputs):
    # escape_backslashes=False: template files keep Jinja's own string escapes, as in a play.
    return templar(**inputs).template(trust_as_template((ROLE / "templates" / template).read_text()),
                                      escape_backslashes=False)


def settings(**inputs):
    """postgresql.conf as {name: value}, checking that every line is a comment or `name = 'value'`."""
    result = {}
    for line in render("postgresql.conf.j2", **inputs).splitlines():
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"([a-z_.]+) = (on|off|'(?:[^']|'')*')", line)
        assert match, f"not a postgresql.conf setting: {line!r}"
        result[match[1]] = match[2].strip("'").replace("''", "'")
    return result


def compose(**inputs):
    return yaml.safe_load(render("compose.yaml.j2", **inputs))


# -- settings derived from the limits -------------------------------------------------------

@pytest.mark.parametrize("inputs, expected", [
    # The 4MB floor of work_mem on a small limit; one CPU still gets one parallel worker.
    ({"postgres_memory_limit": "512m", "postgres_cpus": 1},
     {"shared_buffers": "128MB", "effective_cache_size": "384MB", "work_mem": "4MB",
      "max_parallel_workers": "1", "max_parallel_workers_per_gather": "1", "max_worker_processes": "8"}),
    # (8192 - 2048) / (3 x 100) = 20.48.
    ({"postgres_memory_limit": "8g", "postgres_cpus": 4},
     {"shared_buffers": "2048MB", "effective_cache_size": "6144MB", "work_mem": "20MB",
      "max_parallel_workers": "4", "max_parallel_workers_per_gather": "2", "max_worker_processes": "8"}),
    # More connections share the memory; parallel workers per query stop at 4, worker
    # processes grow with the CPUs.
    ({"postgres_memory_limit": "16g", "postgres_cpus": 16, "postgres_max_connections": 400},
     {"shared_buffers": "4096MB", "effective_cache_size": "12288MB", "work_mem": "10MB",
      "max_connections": "400", "max_parallel_workers": "16", "max_parallel_workers_per_gather": "4",
      "max_worker_processes": "16"}),
    # Without a limit: a quarter of the host's 4096 MB; half a CPU counts as one.
    ({"postgres_cpus": 0.5},
     {"shared_buffers": "256MB", "effective_cache_size": "768MB", "work_mem": "4MB",
      "max_parallel_workers": "1"}),
    # A dedicated database host gives PostgreSQL most of its memory.
    ({"postgres_memory_share": 0.75, "ansible_facts": {"memtotal_mb": 32768, "processor_vcpus": 2}},
     {"shared_buffers": "6144MB", "effective_cache_size": "18432MB", "work_mem": "61MB"}),
])
def test_memory_and_cpu_settings_derive_from_the_limits(inputs, expected):
    rendered = settings(**inputs)
    assert {name: rendered[name] for name in expected} == expected


def test_each_derived_setting_can_be_overridden():
    rendered = settings(postgres_memory_limit="8g", postgres_shared_buffers="1GB",
                        postgres_effective_cache_size="5GB", postgres_max_connections=50)
    # work_mem follows the overridden shared_buffers: (8192 - 1024) / (3 x 50) = 47.8.
    assert (rendered["shared_buffers"], rendered["effective_cache_size"], rendered["work_mem"],
            rendered["max_connections"]) == ("1GB", "5GB", "47MB", "50")
    assert settings(postgres_work_mem="64kB")["work_mem"] == "64kB"


def test_the_defaults_load_pg_stat_statements_and_log_statements_slower_than_a_second():
    rendered = settings()
    assert rendered["shared_preload_libraries"] == "pg_stat_statements"
    assert rendered["log_min_duration_statement"] == "1s"
    assert rendered["listen_addresses"] == "*" and rendered["port"] == "5432"


def test_extra_settings_are_quoted_and_come_last():
    text = render("postgresql.conf.j2", postgres_extra_settings={
        "work_mem": "64MB", "jit": False, "search_path": "\"$user\", public",
        "application_name": "it's", "max_locks_per_transaction": 128})
    lines = text.splitlines()
    assert lines.index("work_mem = '64MB'") > lines.index("work_mem = '4MB'")
    assert "jit = off" in lines
    assert "application_name = 'it''s'" in lines
    assert "search_path = '\"$user\", public'" in lines
    assert "max_locks_per_transaction = '128'" in lines
    settings(postgres_extra_settings={"application_name": "it's"})  # every line still parses


# -- compose.yaml -----------------------------------------------------------------------------

def test_compose_follows_the_container_rules_and_keeps_the_password_out():
    project = compose(postgres_password="do-not-show-me", postgres_memory_limit="1g")
    service = project["services"]["postgres"]
    assert project["name"] == "stack-postgres"
    assert service["user"] == "999:999"
    assert service["read_only"] is True and service["cap_drop"] == ["ALL"]
    assert service["security_opt"] == ["no-new-privileges:true"]
    assert (service["mem_limit"], service["pids_limit"], service["restart"]) == ("1g", 164, "unless-stopped")
    assert service["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    assert "POSTGRES_PASSWORD" not in service["environment"]
    assert "do-not-show-me" not in render("compose.yaml.j2", postgres_password="do-not-show-me")
    assert project["secrets"]["postgres_password"]["file"] == "/opt/stack/postgres/secrets/postgres_password"
    # pg_isready over TCP: the socket answers while the first start's temporary server runs.
    assert service["healthcheck"]["test"][:5] == ["CMD", "pg_isready", "-q", "-h", "127.0.0.1"]
    assert service["healthcheck"]["start_interval"] == "1s"
    assert project["networks"]["default"] == {"name": "stack", "external": True}


@pytest.mark.parametrize("address, published", [
    ("", None),
    ("10.0.0.5", ["10.0.0.5:5432:5432"]),
    ("fd00:1::5", ["[fd00:1::5]:5432:5432"]),
])
def test_the_port_is_published_only_on_the_given_address(address, published):
    assert compose(postgres_listen_address=address)["services"]["postgres"].get("ports") == published


def test_data_lives_on_the_named_volume_or_the_host_path():
    project = compose(postgres_stack_name="shop")
    assert "shop-postgres-data:/var/lib/postgresql/data" in project["services"]["postgres"]["volumes"]
    assert project["volumes"] == {"shop-postgres-data": {"name": "shop-postgres-data"}}
    project = compose(postgres_data_path="/srv/pg data")
    assert "/srv/pg data:/var/lib/postgresql/data" in project["services"]["postgres"]["volumes"]
    assert "volumes" not in project


def test_names_that_need_quoting_stay_strings():
    service = compose(postgres_db="0123", postgres_user="yes", postgres_port=6543)["services"]["postgres"]
    assert (service["environment"]["POSTGRES_DB"], service["environment"]["POSTGRES_USER"]) == ("0123", "yes")
    assert service["healthcheck"]["test"][5:] == ["-p", "6543", "-U", "yes", "-d", "0123"]


# -- validation -----------------------------------------------------------------------------

VALID = {"postgres_password": "secret", **FACTS}
CASES = {
    "valid": ({}, None),
    "valid_private": ({"postgres_listen_address": "10.1.2.3"}, None),
    "valid_removal_without_password": ({"postgres_enabled": False, "postgres_password": ""}, None),
    "no_password": ({"postgres_password": ""},
                    ["vault_postgres_password", "scripts/generate-secrets inventories/<env>"]),
    "everywhere": ({"postgres_listen_address": "0.0.0.0"}, ["postgres_listen_address", "0.0.0.0"]),
    "public": ({"postgres_listen_address": "203.0.113.7"}, ["postgres_listen_address", "private"]),
    "not_on_host": ({"postgres_listen_address": "10.9.9.9", "ansible_facts": {
        **FACTS["ansible_facts"], "all_ipv4_addresses": ["10.1.2.3"], "all_ipv6_addresses": []}},
        ["postgres_listen_address", "10.1.2.3"]),
    "bad_size": ({"postgres_shared_buffers": "256"}, ["postgres_shared_buffers", "kB, MB, GB"]),
    "bad_limit": ({"postgres_memory_limit": "1.5g"}, ["postgres_memory_limit"]),
    "other_major": ({"postgres_image": "postgres:16.4-bookworm"}, ["postgres_version", "postgres_image"]),
    "bad_name": ({"postgres_db": "shop; DROP"}, ["postgres_db"]),
    "bad_extra": ({"postgres_extra_settings": {"Bad Name": 1}}, ["postgres_extra_settings", "Bad Name"]),
    "relative_path": ({"postgres_data_path": "data"}, ["postgres_data_path"]),
}


@pytest.fixture(scope="module")
def validation(tmp_path_factory):
    return validate_role_cases("postgres", CASES, VALID, tmp_path_factory.mktemp("validate"))


@pytest.mark.parametrize("case", CASES)
def test_validation_names_the_variable_to_fix(validation, case):
    expected = CASES[case][1]
    if expected is None:
        assert validation[case] is None, validation[case]
    else:
        assert validation[case] is not None, f"{case} passed validation"
        for text in expected:
            assert text in validation[case]
