"""The project's strategy plugin (plugins/strategy/mitogen_linear.py): Mitogen's linear strategy,
with the installed collections listed once in the control node's process instead of in every
forked worker (bench/README.md has the figures)."""
import importlib.util
import os
import subprocess
from pathlib import Path

import ansible
import ansible_mitogen.module_finder
import ansible_mitogen.planner
import pytest
from ansible.plugins.loader import init_plugin_loader, module_loader

from conftest import REPO, VENV_BIN

PLUGIN = REPO / "plugins" / "strategy" / "mitogen_linear.py"
# Mitogen's own functions, before the plugin (loaded by the fixture below) replaces them.
MITOGENS_LOAD_COLLECTIONS = ansible_mitogen.planner._load_collections
MITOGENS_SCAN = ansible_mitogen.module_finder._scan_importlib_find_spec


def load_plugin():
    """As Ansible loads it: with Ansible's collection loader in place. Without the template
    cache, which it would install in this process (tests/unit/test_template_cache.py)."""
    init_plugin_loader()
    spec = importlib.util.spec_from_file_location("project_mitogen_linear", PLUGIN)
    module = importlib.util.module_from_spec(spec)
    before = os.environ.get("DEPLOYER_TEMPLATE_CACHE")
    os.environ["DEPLOYER_TEMPLATE_CACHE"] = "off"
    try:
        spec.loader.exec_module(module)
    finally:
        if before is None:
            del os.environ["DEPLOYER_TEMPLATE_CACHE"]
        else:
            os.environ["DEPLOYER_TEMPLATE_CACHE"] = before
    return module


class Invocation:
    """The one attribute of Mitogen's Invocation that _load_collections fills."""

    def __init__(self):
        self._extra_sys_paths = set()


@pytest.fixture(scope="module")
def plugin():
    return load_plugin()


def test_the_plugin_gives_mitogens_strategy_and_lists_the_collections_once(plugin):
    mitogens_own = MITOGENS_LOAD_COLLECTIONS
    assert mitogens_own.__module__ == "ansible_mitogen.planner"
    assert any(base.__module__.startswith("ansible_mitogen") for base in plugin.StrategyModule.__mro__), \
        "Mitogen did not load: the plugin fell back to Ansible's linear strategy"
    # With the skips decided on the control node (tests/unit/test_controller_skips.py), the
    # tasks that never touch the host run there (tests/unit/test_controller_actions.py) and the
    # workers' caches warmed before they fork (tests/unit/test_worker_warmup.py).
    assert plugin.StrategyModule.__module__ == "deployer_controller_actions"
    assert [base.__module__ for base in plugin.StrategyModule.__mro__[:3]] == [
        "deployer_controller_actions", "deployer_controller_skips", "deployer_worker_warmup"]
    # If a Mitogen upgrade renames the function, the speed-up is gone: this says so.
    assert ansible_mitogen.planner._load_collections is plugin._load_collections
    names = {Path(path).relative_to(Path(path).parents[1]).as_posix() for path in plugin.COLLECTION_DIRS}
    assert {"community/docker", "community/general", "ansible/posix", "community/crypto"} <= names
    # A worker gets the same module search paths as from Mitogen's own listing.
    by_mitogen, by_plugin = Invocation(), Invocation()
    mitogens_own(by_mitogen)
    plugin._load_collections(by_plugin)
    assert by_plugin._extra_sys_paths == by_mitogen._extra_sys_paths


@pytest.mark.parametrize("module", [
    "ansible.builtin.file", "ansible.builtin.user", "community.docker.docker_compose_v2",
    "community.general.timezone", "ansible.posix.authorized_key", "community.crypto.openssl_privatekey"])
def test_the_plugins_module_utils_scan_finds_what_mitogens_own_finds(plugin, module):
    """Mitogen finds a module's module_utils with the plugin's scan, which looks each file up
    once a run; it must give the same files as Mitogen's own, for each module in turn."""
    assert MITOGENS_SCAN.__module__ == "ansible_mitogen.module_finder"
    assert ansible_mitogen.module_finder._scan_importlib_find_spec is plugin._scan_importlib_find_spec
    path = module_loader.find_plugin(module)
    search_path = (str(Path(ansible.__file__).parent / "module_utils"),)
    expected = MITOGENS_SCAN(f"ansible_module_{module}", path, search_path)
    assert len(expected) > 10, expected
    assert ansible_mitogen.module_finder.scan(f"ansible_module_{module}", path, search_path) == expected


def test_ansible_playbook_runs_a_collection_module_through_the_plugin(tmp_path):
    """The plugin as ansible-playbook loads it, on localhost. Local modules find the collections
    on the control node's own path, so the listed directories matter only on other hosts:
    Molecule's scenarios run collection modules on test hosts through this plugin."""
    ini = tmp_path / "settings.ini"
    (tmp_path / "play.yml").write_text(f"""
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Write one setting with a community.general module
      community.general.ini_file:
        path: {ini}
        section: server
        option: port
        value: "8080"
        mode: "0600"
""")
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_STRATEGY="mitogen_linear")
    result = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                             str(tmp_path / "play.yml")],
                            cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Mitogen did not load" not in result.stdout + result.stderr
    assert ini.read_text().split() == ["[server]", "port", "=", "8080"]
