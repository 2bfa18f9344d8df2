"""The redis role without a test host: the redis.conf and compose.yaml it renders for one
instance or a second one, passwords with characters Redis would otherwise interpret, and the
validation that stops bad input (an evicting broker above all) before anything changes."""
from conftest import validate_role_cases
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader
from ansible.template import Templar, trust_as_template

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "redis"
VENV_BIN = Path(sys.executable).parent

init_plugin_loader()


def trusted(value):
    """Role defaults and vars are trusted templates in a play; mark them so here too."""
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return {key: trusted(item) for key, item in value.items()}
    return value


def render(template, **inputs):
    variables = {
        **trusted(yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())),
        "redis_password": "secret",
        **inputs,
        **trusted(yaml.safe_load((ROLE / "vars" / "main.yml").read_text())),
        "ansible_managed": "Ansible managed",
        # Where the compose template's lookup of redis.conf.j2 searches, as in a play.
        "ansible_search_path": [str(ROLE)],
    }
    templar = Templar(loader=DataLoader(), variables=variables)
    # escape_backslashes=False: template files keep Jinja's own string escapes, as in a play.
    return templar.template(trust_as_template((ROLE / "templates" / template).read_text()),
                            escape_backslashes=False)


def directives(**inputs):
    """redis.conf as {name: [arguments]}, split the way Redis splits a line (sdssplitargs)."""
    result = {}
    for line in render("redis.conf.j2", **inputs).splitlines():
        if line and not line.startswith("#"):
            result[line.split()[0]] = split_args(line)[1:]
    return result


def split_args(line):
    """Redis's own rules: "double quotes" with \\-escapes (\\xHH too), 'single quotes' with \\'."""
    args, i = [], 0
    while i < len(line):
        if line[i] == " ":
            i += 1
            continue
        arg = ""
        if line[i] == '"':
            i += 1
            while line[i] != '"':
                if line[i] == "\\" and line[i + 1] == "x":
                    arg += chr(int(line[i + 2:i + 4], 16))
                    i += 4
                    continue
                if line[i] == "\\":
                    i += 1
                arg += line[i]
                i += 1
            i += 1
            assert i == len(line) or line[i] == " ", "closing quote must be followed by a space"
        else:
            while i < len(line) and line[i] != " ":
                arg += line[i]
                i += 1
        args.append(arg)
    return args


def compose(**inputs):
    return yaml.safe_load(render("compose.yaml.j2", **inputs))


# -- redis.conf -----------------------------------------------------------------------------

def test_the_defaults_require_a_password_and_persist_every_write():
    conf = directives()
    assert conf["requirepass"] == ["secret"]
    assert (conf["appendonly"], conf["appendfsync"]) == (["yes"], ["everysec"])
    assert (conf["maxmemory"], conf["maxmemory-policy"]) == (["256mb"], ["noeviction"])
    assert conf["dir"] == ["/data"] and conf["port"] == ["6379"]


@pytest.mark.parametrize("password", ['with "quotes"', "back\\slash\\x41", "it's a space", "plain"])
def test_the_password_reaches_redis_intact(password):
    assert directives(redis_password=password)["requirepass"] == [password]


def test_maxmemory_follows_the_limit_unless_given():
    assert directives(redis_memory_limit="2g")["maxmemory"] == ["1024mb"]
    assert directives(redis_memory_limit="2g", redis_maxmemory="1500mb")["maxmemory"] == ["1500mb"]


def test_extra_settings_are_written_as_given_after_the_others():
    lines = render("redis.conf.j2", redis_extra_settings={"save": "3600 1 300 100", "appendfsync": "always"})
    lines = lines.splitlines()
    assert "save 3600 1 300 100" in lines
    assert lines.index("appendfsync always") > lines.index("appendfsync everysec")


# -- compose.yaml ---------------------------------------------------------------------------

def test_compose_follows_the_container_rules_and_keeps_the_password_out():
    text = render("compose.yaml.j2", redis_password="do-not-show-me")
    assert "do-not-show-me" not in text
    project = yaml.safe_load(text)
    service = project["services"]["redis"]
    assert project["name"] == "stack-redis"
    assert service["user"] == "999:999" and service["read_only"] is True
    assert service["cap_drop"] == ["ALL"] and service["security_opt"] == ["no-new-privileges:true"]
    assert (service["mem_limit"], service["pids_limit"], service["restart"]) == ("512m", 64, "unless-stopped")
    assert service["command"] == ["redis-server", "/usr/local/etc/redis/redis.conf"]
    assert project["secrets"]["redis_password"]["file"] == "/opt/stack/redis/secrets/redis_password"
    assert "REDISCLI_AUTH=\"$$(cat /run/secrets/redis_password)\"" in service["healthcheck"]["test"][1]
    assert service["healthcheck"]["start_interval"] == "1s"
    assert "ports" not in service


def test_a_configuration_change_changes_the_checksum_label():
    def checksum(**inputs):
        return compose(**inputs)["services"]["redis"]["labels"]["deployer.config-checksum"]
    assert checksum() == checksum()
    assert checksum() != checksum(redis_maxmemory_policy="allkeys-lru", redis_broker_enabled=False)
    assert checksum() != checksum(redis_password="rotated")


def test_a_second_instance_gets_its_own_service_project_volume_and_port():
    project = compose(redis_stack_name="shop", redis_instance_name="redis-cache", redis_port=6380,
                      redis_listen_address="192.168.1.10")
    assert project["name"] == "shop-redis-cache"
    assert list(project["services"]) == ["redis-cache"]
    service = project["services"]["redis-cache"]
    assert service["ports"] == ["192.168.1.10:6380:6380"]
    assert "-p 6380 ping" in service["healthcheck"]["test"][1]
    assert "shop-redis-cache-data:/data" in service["volumes"]
    assert project["volumes"] == {"shop-redis-cache-data": {"name": "shop-redis-cache-data"}}
    assert project["networks"]["default"] == {"name": "shop", "external": True}


def test_an_ipv6_listen_address_is_bracketed():
    assert compose(redis_listen_address="fd12::7")["services"]["redis"]["ports"] == ["[fd12::7]:6379:6379"]


# -- validation -----------------------------------------------------------------------------

VALID = {"redis_password": "secret"}
CASES = {
    "valid": ({}, None),
    "valid_cache": ({"redis_instance_name": "redis-cache", "redis_broker_enabled": False,
                     "redis_maxmemory_policy": "allkeys-lru"}, None),
    "valid_accepted_eviction": ({"redis_maxmemory_policy": "volatile-lru",
                                 "redis_broker_eviction_enabled": True}, None),
    "valid_private": ({"redis_listen_address": "172.20.0.4"}, None),
    "no_password": ({"redis_password": ""}, ["vault_redis_password", "scripts/generate-secrets inventories/<env>"]),
    "newline_password": ({"redis_password": "a\nb"}, ["redis_password"]),
    "evicting_broker": ({"redis_maxmemory_policy": "allkeys-lru"},
                        ["redis_maxmemory_policy", "redis_broker_eviction_enabled", "redis-cache"]),
    "volatile_broker": ({"redis_maxmemory_policy": "volatile-ttl"}, ["redis_maxmemory_policy"]),
    "unknown_policy": ({"redis_maxmemory_policy": "lru"}, ["redis_maxmemory_policy"]),
    "everywhere": ({"redis_listen_address": "0.0.0.0"}, ["redis_listen_address", "0.0.0.0"]),
    "public": ({"redis_listen_address": "172.32.0.1"}, ["redis_listen_address", "private"]),
    "bad_instance": ({"redis_instance_name": "Redis_Cache"}, ["redis_instance_name"]),
    "bad_maxmemory": ({"redis_maxmemory": "half"}, ["redis_maxmemory"]),
}


@pytest.fixture(scope="module")
def validation(tmp_path_factory):
    return validate_role_cases("redis", CASES, VALID, tmp_path_factory.mktemp("validate"))


@pytest.mark.parametrize("case", CASES)
def test_validation_names_the_variable_to_fix(validation, case):
    expected = CASES[case][1]
    if expected is None:
        assert validation[case] is None, validation[case]
    else:
        assert validation[case] is not None, f"{case} passed validation"
        for text in expected:
            assert text in validation[case]
