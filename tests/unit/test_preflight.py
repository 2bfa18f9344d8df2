"""roles/preflight without a server: each way a host or an inventory is unfit fails with a
message naming what to fix, one test per failure. The host's facts are given here;
molecule/hardening runs playbooks/preflight.yml against a real test host."""
import re
from pathlib import Path

import pytest
import yaml

from test_app import failure_message

FACTS = {"distribution": "Debian", "distribution_major_version": "13", "memtotal_mb": 3900}


def df(mount, free_mb):
    """What the role's df probe registers (df -Pk ... | tail -n 1)."""
    return {"stdout_lines": [f"/dev/vda1 81000000 30000000 {free_mb * 1024 + 1000} 38% {mount}"]}


FIT = {
    "inventory_hostname": "shop1", "ansible_facts": FACTS, "__preflight_df": df("/", 40960), "stack_name": "shop",
    "stack_domains": ["shop.example.com", "www.shop.example.com"],
    "base_deploy_authorized_keys": ["ssh-ed25519 AAAA me@laptop"], "app_image": "shop/web:1.0.0",
    "vault_postgres_password": "p", "vault_redis_password": "r", "vault_app_secret_key": "s",
}


def message(**changes):
    return failure_message("preflight", **{**FIT, **changes})


def test_a_fit_host_and_inventory_pass():
    assert message() is None
    assert message(ansible_facts={**FACTS, "distribution_major_version": "12"}) is None


def test_an_unsupported_system_is_named_with_the_supported_ones():
    text = message(ansible_facts={**FACTS, "distribution": "Ubuntu", "distribution_major_version": "24"})
    assert "shop1 runs Ubuntu 24; the roles support Debian 12 and Debian 13 (preflight_supported_systems)" in text
    assert "Debian 11" in message(ansible_facts={**FACTS, "distribution_major_version": "11"})


def test_too_little_memory_names_the_minimum_setting():
    text = message(ansible_facts={**FACTS, "memtotal_mb": 960})
    assert "shop1 has 960 MiB of memory, less than preflight_min_memory_mb (1800 MiB)" in text


def test_too_little_disk_names_the_filesystem_holding_the_docker_path():
    text = message(__preflight_df=df("/var", 2048))
    assert "shop1 has 2048 MiB free on /var, which holds preflight_disk_path /var/lib/docker" in text
    assert "preflight_min_disk_free_mb asks for 5120 MiB" in text
    assert message(__preflight_df=df("/var", 5120)) is None
    assert "on /srv/docker, which holds preflight_disk_path /srv/docker/x" in message(
        preflight_disk_path="/srv/docker/x", __preflight_df=df("/srv/docker", 1))


@pytest.mark.parametrize("name", ["stack_domains", "base_deploy_authorized_keys", "app_image"])
def test_a_missing_required_variable_is_named(name):
    assert message(**{name: ""}).startswith(f"{name} is not set or empty: ")
    assert "group_vars/all/main.yml" in message(**{name: []})


def test_malformed_site_names_are_listed():
    text = message(stack_domains=["shop.example.com", "Shop Example", "-bad.example.com"])
    assert "stack_domains must be a list of DNS names" in text and "['Shop Example', '-bad.example.com']" in text
    assert "['shop.example.com']" in message(stack_domains="shop.example.com")


@pytest.mark.parametrize("secret", ["vault_postgres_password", "vault_redis_password", "vault_app_secret_key"])
def test_an_empty_or_missing_secret_names_the_vault_variable(secret):
    text = message(**{secret: "  "})
    assert text.startswith(f"{secret} is missing or empty in the vault. Run `scripts/generate-secrets")
    inputs = {**FIT}
    del inputs[secret]
    assert failure_message("preflight", **inputs).startswith(f"{secret} is missing")


def test_bad_preflight_settings_are_named():
    assert "preflight_disk_path an absolute path (it is 'docker')" in message(preflight_disk_path="docker")


def test_every_example_inventory_has_an_example_vault_with_every_required_secret():
    repo = Path(__file__).resolve().parents[2]
    required = set(yaml.safe_load((repo / "roles/preflight/defaults/main.yml").read_text())["preflight_required_secrets"])
    generated = set(re.findall(r'"(vault_\w+)":', (repo / "scripts/generate-secrets").read_text()))
    assert required <= generated, "scripts/generate-secrets must create every secret the preflight requires"
    examples = sorted(repo.glob("inventories/example-*"))
    assert examples
    for inventory in examples:
        vault = yaml.safe_load((inventory / "group_vars/all/vault.yml.example").read_text())
        assert set(vault) == generated, inventory.name
