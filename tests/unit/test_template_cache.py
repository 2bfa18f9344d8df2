"""Compiled Jinja templates kept across workers and runs (plugins/speedups/template_cache.py,
installed by the strategy plugin): each case renders the same templates and conditionals in a
fresh Python process, as a forked worker starts with nothing compiled, and counts how often
Jinja generated code."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO

CACHE = REPO / "plugins" / "speedups" / "template_cache.py"
RENDER = r"""
import importlib.util, json, sys
import jinja2.environment
spec = importlib.util.spec_from_file_location("template_cache", sys.argv[1])
cache = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cache)
installed = cache.install()
generated = []
original = jinja2.environment.Environment._generate
def counting(self, *args, **kwargs):
    generated.append(1)
    return original(self, *args, **kwargs)
jinja2.environment.Environment._generate = counting
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template
templar = Templar(loader=DataLoader(), variables={"word": "héllo", "numbers": [1, 2, 3], "path": "c:\\new"})
templates = [
    "{{ word | upper }} {{ numbers | sum }}",
    "{{ 'ab_name' | regex_replace('^(.*)_name$', '\\1') }}",
    "#jinja2: variable_start_string:'[%', variable_end_string:'%]'\n[% word %] {{ word }}",
    "{% for n in numbers %}{{ n * 2 }},{% endfor %}",
    "{{ {'a': 1} | combine({'b': numbers}) }}",
    "{{ path }} {{ '\\n' | length }}",
]
conditions = ["numbers | length > 2", "word is match('^h')", "'x' in numbers"]
results = [templar.template(trust_as_template(source)) for source in templates]
results += [templar.evaluate_conditional(trust_as_template(condition)) for condition in conditions]
print(json.dumps({"installed": installed, "generated": len(generated), "results": results}))
"""


def environment(cache_dir, **env):
    """This process's environment without a DEPLOYER_TEMPLATE_CACHE of its own."""
    base = {name: value for name, value in os.environ.items() if name != "DEPLOYER_TEMPLATE_CACHE"}
    return dict(base, DEPLOYER_TEMPLATE_CACHE_DIR=str(cache_dir), **env)


def render(cache_dir, **env):
    run = subprocess.run(
        [sys.executable, "-c", RENDER, str(CACHE)], capture_output=True, text=True, timeout=120,
        env=environment(cache_dir, **env))
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


@pytest.fixture(scope="module")
def without_cache(tmp_path_factory):
    return render(tmp_path_factory.mktemp("unused"), DEPLOYER_TEMPLATE_CACHE="off")


def test_without_the_cache_templates_are_generated_again_and_again(without_cache):
    assert without_cache["installed"] is False
    # Ansible compiles a template each time it renders it; the cache also remembers them in
    # the process, so the 9 sources below are generated 9 times with it.
    assert without_cache["generated"] > 9


def test_a_fresh_process_finds_every_template_compiled_with_the_same_results(tmp_path, without_cache):
    first = render(tmp_path)
    assert first["installed"] is True
    assert first["generated"] == 9
    assert first["results"] == without_cache["results"]
    second = render(tmp_path)
    assert second["generated"] == 0
    assert second["results"] == without_cache["results"]


def test_a_damaged_cache_entry_is_compiled_again(tmp_path, without_cache):
    render(tmp_path)
    entries = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert len(entries) == 9
    for entry in entries:
        entry.write_bytes(b"not marshalled code")
    again = render(tmp_path)
    assert again["generated"] == 9
    assert again["results"] == without_cache["results"]


def test_a_cache_directory_that_cannot_be_written_only_costs_the_compile(tmp_path, without_cache):
    blocked = tmp_path / "file-not-directory"
    blocked.write_text("")
    outcome = render(blocked)
    assert outcome["generated"] == 9
    assert outcome["results"] == without_cache["results"]


def test_other_versions_unused_for_30_days_are_deleted_and_nothing_else(tmp_path, without_cache):
    month_ago = time.time() - 31 * 86400
    old, recent, foreign = tmp_path / "0123456789abcdef", tmp_path / "fedcba9876543210", tmp_path / "notes"
    for directory in (old, recent, foreign):
        (directory / "ab").mkdir(parents=True)
        (directory / "ab" / "entry").write_bytes(b"x")
    for directory in (old, foreign):
        os.utime(directory, (month_ago, month_ago))
    os.utime(recent, (time.time() - 29 * 86400,) * 2)
    assert render(tmp_path)["installed"]
    assert not old.exists()
    assert recent.exists() and foreign.exists()
    # This run's own directory, marked as used.
    own = [d for d in tmp_path.iterdir() if d not in (recent, foreign)]
    assert len(own) == 1 and time.time() - own[0].stat().st_mtime < 60


def test_the_strategy_plugin_installs_it_for_ansible_playbook(tmp_path):
    (tmp_path / "play.yml").write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.debug: {msg: \"{{ 6 * 7 }}\"}\n      when: 1 < 2\n")
    # The unit tests run Ansible's own linear strategy (conftest.py); the project's is the default.
    env = environment(tmp_path / "cache", ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_STRATEGY="mitogen_linear")
    run = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                          str(tmp_path / "play.yml")], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "msg: 42" in run.stdout or '"msg": 42' in run.stdout, run.stdout
    assert len([path for path in (tmp_path / "cache").rglob("*") if path.is_file()]) >= 2, run.stdout + run.stderr
