"""The input_checks action plugin (plugins/action/input_checks.py), which every role's
tasks/validate.yml uses: run by ansible-playbook, one host per case."""
import json
import os
import subprocess
import sys

import pytest
import yaml

from conftest import REPO, VENV_BIN, tasks_by_name

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


ROLE_SPEC = {"argument_specs": {"main": {"options": {
    "port": {"type": "int", "required": True},
    "mode": {"type": "str", "choices": ["a", "b"], "default": "a"},
    "names": {"type": "list", "elements": "str"}}}}}
ROLE_RULES = [{"name": "Check the port range", "that": "port | int < 65536", "fail_msg": "port {{ port }} is too high"}]
SPEC_CASES = {
    "spec_valid": {"port": 80, "mode": "b", "names": ["web"]},
    "spec_broken": {"port": "eighty", "mode": "c", "names": "web"},
    "spec_holds_rule_broken": {"port": 70000},
    "spec_templated": {"port": "{{ 40 + 40 }}", "mode": "{{ 'z' }}"},
}


@pytest.fixture(scope="module")
def spec_outcomes(tmp_path_factory):
    """A role whose tasks/validate.yml checks its meta/argument_specs.yml, included as the
    preflight includes every role: tasks_from: validate, which has no entry point there."""
    tmp = tmp_path_factory.mktemp("argument_spec")
    role = tmp / "roles" / "probe"
    (role / "meta").mkdir(parents=True)
    (role / "tasks").mkdir()
    (role / "meta" / "argument_specs.yml").write_text(yaml.safe_dump(ROLE_SPEC))
    (role / "tasks" / "validate.yml").write_text(yaml.safe_dump([{
        "name": "Check the probe inputs", "input_checks": {"argument_spec": "main", "checks": ROLE_RULES}}]))
    hosts = {name: {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, **inputs}
             for name, inputs in SPEC_CASES.items()}
    (tmp / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    play = [{"hosts": "all", "gather_facts": False,
             "tasks": [{"ansible.builtin.include_role": {"name": "probe", "tasks_from": "validate"}}]}]
    (tmp / "play.yml").write_text(yaml.safe_dump(play))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_ROLES_PATH=str(tmp / "roles"))
    run = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", str(tmp / "hosts.yml"), str(tmp / "play.yml")],
                         cwd=tmp, env=env, capture_output=True, text=True)
    tasks = json.loads(run.stdout)["plays"][0]["tasks"]
    # The include, then the role's one task: no argument spec task of Ansible's own in between.
    assert [task["task"]["name"] for task in tasks][1:] == ["probe : Check the probe inputs"], run.stdout
    return tasks[1]["hosts"]


def test_inputs_that_match_the_argument_spec_go_on_to_the_rules(spec_outcomes):
    assert not spec_outcomes["spec_valid"].get("failed"), spec_outcomes["spec_valid"]["msg"]
    outcome = spec_outcomes["spec_holds_rule_broken"]
    assert outcome["failed"] and "- Check the port range: port 70000 is too high" in outcome["msg"]


def test_every_argument_spec_mismatch_is_reported_and_the_rules_wait(spec_outcomes):
    outcome = spec_outcomes["spec_broken"]
    assert outcome["failed"]
    lines = outcome["msg"].splitlines()
    assert lines[0] == ("The role's inputs do not match its meta/argument_specs.yml ('main');"
                        " fix every one, then run again:")
    assert len(lines) == 3 and len(outcome["argument_errors"]) == 2, outcome["msg"]
    assert "port" in outcome["msg"] and "eighty" in outcome["msg"] and "int" in outcome["msg"]
    assert "mode" in outcome["msg"] and "a, b" in outcome["msg"]
    # A list of str accepts "web" (Ansible's own validator converts it), as when the role runs.
    assert "names" not in outcome["msg"]
    assert "too high" not in outcome["msg"]


def test_the_argument_spec_sees_templated_values(spec_outcomes):
    outcome = spec_outcomes["spec_templated"]
    assert outcome["failed"], outcome["msg"]
    # "{{ 40 + 40 }}" is 80, an int; "{{ 'z' }}" is no choice.
    assert outcome["argument_errors"] == ["value of mode must be one of: a, b, got: z"], outcome["msg"]


def test_argument_spec_outside_a_role_is_refused(tmp_path):
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [{"name": "Check", "input_checks": {
        "argument_spec": "main", "checks": [{"name": "x", "that": "true"}]}}]}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json")
    run = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                          str(tmp_path / "play.yml")], cwd=tmp_path, env=env, capture_output=True, text=True)
    outcome = json.loads(run.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    assert outcome["failed"] and "needs a task of a role" in outcome["msg"]


def test_each_entry_point_is_checked_against_its_own_spec_on_every_host(tmp_path):
    """input_checks keeps each role's specs for the run: per entry point, and for every host."""
    role = tmp_path / "roles" / "probe"
    (role / "meta").mkdir(parents=True)
    (role / "tasks").mkdir()
    specs = {"argument_specs": {"main": {"options": {"port": {"type": "int", "required": True}}},
                                "other": {"options": {"name": {"type": "str", "required": True}}}}}
    (role / "meta" / "argument_specs.yml").write_text(yaml.safe_dump(specs))
    rule = [{"name": "Always", "that": "true"}]
    (role / "tasks" / "validate.yml").write_text(yaml.safe_dump([
        {"name": "Check main", "input_checks": {"argument_spec": "main", "checks": rule}},
        {"name": "Check other", "input_checks": {"argument_spec": "other", "checks": rule}, "ignore_errors": True}]))
    hosts = {name: {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "port": 80}
             for name in ("first", "second")}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    play = [{"hosts": "all", "gather_facts": False,
             "tasks": [{"ansible.builtin.include_role": {"name": "probe", "tasks_from": "validate"}}]}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    # With the project's strategy, which runs input_checks in its own process for both hosts
    # (the unit tests otherwise run Ansible's linear strategy, tests/unit/conftest.py).
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_ROLES_PATH=str(tmp_path / "roles"), ANSIBLE_STRATEGY="mitogen_linear")
    run = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"),
                          str(tmp_path / "play.yml")], cwd=tmp_path, env=env, capture_output=True, text=True)
    tasks = tasks_by_name(json.loads(run.stdout))
    for host in hosts:
        assert not tasks["probe : Check main"][host].get("failed"), tasks["probe : Check main"][host]["msg"]
        other = tasks["probe : Check other"][host]
        assert other["failed"] and other["argument_errors"] == ["missing required arguments: name"], other
