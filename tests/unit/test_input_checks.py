"""The input_checks action plugin (plugins/action/input_checks.py), which every role's
tasks/validate.yml uses: run by ansible-playbook, one host per case."""
import json
import os
import subprocess
import sys

import pytest
import yaml

from conftest import REPO, VENV_BIN

RULES = [
    {"name": "Check the port", "that": ["port | int > 0", "port | int < 65536"],
     "fail_msg": "port is {{ port }}, not 1-65535"},
    {"name": "Check the names", "that": "name is match('^[a-z]+$')",
     "fail_msg": "name '{{ name }}' of {{ __kind }} must be lowercase letters",
     "loop": "{{ names }}", "loop_control": {"loop_var": "name", "label": "{{ name | upper }}"},
     "vars": {"__kind": "{{ kind }}"}},
    {"name": "Check the mode", "that": "mode in ['a', 'b']", "fail_msg": "mode is {{ mode }}",
     "when": "mode_enabled"},
    {"name": "Check the secret", "that": "secret | from_json | length > 0",
     "fail_msg": "secret must be a non-empty JSON list", "no_log": True},
    {"name": "Check the last rule", "that": "last", "fail_msg": "last is false"},
]
VALID = {"port": 80, "names": ["web", "api"], "kind": "service", "mode": "a", "mode_enabled": True,
         "secret": "[1]", "last": True}
CASES = {
    "valid": {},
    "mode_off": {"mode": "c", "mode_enabled": False},
    "three_broken": {"port": 0, "names": ["web", "Api", "DB"], "mode": "c"},
    "undefined": {"port": "{{ nothing_here }}"},
    "secret_unreadable": {"secret": "not json: hunter2", "last": False},
}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("input_checks")
    hosts = {name: {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                    **VALID, **inputs} for name, inputs in CASES.items()}
    (tmp / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    play = [{"hosts": "all", "gather_facts": False,
             "tasks": [{"name": "Check the inputs", "input_checks": {"checks": RULES}}]}]
    (tmp / "play.yml").write_text(yaml.safe_dump(play))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json")
    run = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", str(tmp / "hosts.yml"), str(tmp / "play.yml")],
                         cwd=tmp, env=env, capture_output=True, text=True)
    return json.loads(run.stdout)["plays"][0]["tasks"][0]["hosts"]


@pytest.mark.parametrize("case", ["valid", "mode_off"])
def test_inputs_that_hold_pass_without_change(outcomes, case):
    outcome = outcomes[case]
    assert not outcome.get("failed"), outcome["msg"]
    assert outcome["changed"] is False
    assert outcome["msg"] == "All 5 input checks passed"


def test_every_broken_rule_is_reported_not_only_the_first(outcomes):
    outcome = outcomes["three_broken"]
    assert outcome["failed"]
    assert [(f["name"], f.get("item")) for f in outcome["failures"]] == [
        ("Check the port", None), ("Check the names", "API"), ("Check the names", "DB"),
        ("Check the mode", None)]
    assert outcome["msg"].splitlines() == [
        "4 of the 5 input checks failed; fix every one, then run again:",
        "- Check the port: port is 0, not 1-65535",
        "- Check the names (API): name 'Api' of service must be lowercase letters",
        "- Check the names (DB): name 'DB' of service must be lowercase letters",
        "- Check the mode: mode is c"]


def test_a_rule_that_cannot_be_evaluated_ends_the_checking(outcomes):
    outcome = outcomes["undefined"]
    assert outcome["failed"]
    assert len(outcome["failures"]) == 1
    assert outcome["failures"][0]["name"] == "Check the port"
    assert "could not be checked" in outcome["msg"] and "nothing_here" in outcome["msg"]


def test_a_no_log_rule_does_not_print_its_inputs(outcomes):
    outcome = outcomes["secret_unreadable"]
    assert outcome["failed"]
    assert "hunter2" not in json.dumps(outcome)
    assert "- Check the secret: could not be checked: its inputs could not be read" in outcome["msg"]
    # The checking ended there: the last rule, false too, is not reported.
    assert [f["name"] for f in outcome["failures"]] == ["Check the secret"]


@pytest.mark.parametrize("checks, expected", [
    ([], "a non-empty list of rules"),
    ([{"name": "typo", "that": "true", "fail_mesage": "x"}], "unknown keys ['fail_mesage']"),
    ([{"name": "no condition", "fail_msg": "x"}], "it has no 'that'"),
    ([{"name": "not a condition", "that": {"a": 1}}], "'that' must be a condition"),
])
def test_a_malformed_rule_is_named(tmp_path, checks, expected):
    play = [{"hosts": "localhost", "gather_facts": False,
             "tasks": [{"name": "Check", "input_checks": {"checks": checks}}]}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json")
    run = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                          str(tmp_path / "play.yml")], cwd=tmp_path, env=env, capture_output=True, text=True)
    outcome = json.loads(run.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    assert outcome["failed"] and expected in outcome["msg"]
