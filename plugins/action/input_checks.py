# A role's input rules (tasks/validate.yml) as one task: every rule is checked on the control
# node and every broken one is reported, where one `assert` task per rule stopped at the first
# and cost a task's overhead each (about 0.07 s with Mitogen; 90 rules in site.yml's preflight).
#
#   - name: Check the Redis inputs
#     input_checks:
#       checks:
#         - name: Check the instance name
#           that: redis_instance_name is match('^[a-z][a-z0-9-]{0,30}$')   # or a list: all must hold
#           fail_msg: >-
#             redis_instance_name ('{{ redis_instance_name }}') names the service ...
#           when: redis_enabled            # optional; a string or a list, checked before the loop
#           vars: {__name: "{{ ... }}"}    # optional; for this rule's that, loop and fail_msg
#           loop: "{{ ... }}"              # optional; the rule holds for every item
#           loop_control: {loop_var: x, label: "{{ x.name }}"}   # optional
#           no_log: true                   # optional; report only the name and the fail_msg
#
# With `argument_spec: main`, the task first checks the inputs against that entry point of the
# task's role's meta/argument_specs.yml, as Ansible does before it runs the role (the same
# validator, the same inputs: the variables named there, and the role's parameters). A role's
# validate.yml then needs no entry point of its own in argument_specs.yml, which would cost a
# task of its own. When the inputs do not match, every mismatch is reported and the rules are
# not checked: they may read the same inputs.
#
# A rule's keys mean what they mean on an `ansible.builtin.assert` task, with one difference:
# `when` is evaluated once, before the loop. A rule that cannot be evaluated (an undefined
# variable, a filter's error) is reported and ends the checking, since the rules after it may
# read the same input.
from __future__ import annotations

import collections
import typing as t

from ansible.errors import AnsibleError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase
from ansible.utils.vars import combine_vars

RULE_KEYS = {"name", "that", "fail_msg", "when", "vars", "loop", "loop_control", "no_log"}

# {(role path, entry point): its options}: the strategy runs this action in its own process for
# every host (plugins/speedups/controller_actions.py), and reading a role's
# meta/argument_specs.yml again for each took about 20 ms; the files do not change during a run.
_SPECS: dict[tuple[str, str], dict | None] = {}


class ActionModule(ActionBase):
    _requires_connection = False

    @classmethod
    def finalize_task_arg(cls, name: str, value: t.Any, templar: t.Any, context: t.Any) -> t.Any:
        # The rules are templated here, each with its own vars and loop item, not up front.
        if name == "checks":
            return value
        return super().finalize_task_arg(name, value, templar, context)

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        checks = self._task.args.get("checks")
        entry_point = self._task.args.get("argument_spec")
        unknown = set(self._task.args) - {"checks", "argument_spec"}
        if unknown or not isinstance(checks, list) or not checks:
            return dict(result, failed=True, msg="input_checks takes checks, a non-empty list of rules, and"
                        " optionally argument_spec, an entry point of the role's meta/argument_specs.yml"
                        + (f" (unknown arguments: {sorted(unknown)})" if unknown else ""))
        result["changed"] = False
        if entry_point is not None:
            try:
                mismatches = self._argument_spec_errors(entry_point, task_vars or {})
            except AnsibleError as error:
                return dict(result, failed=True, msg=str(error.message))
            if mismatches:
                return dict(result, failed=True, argument_errors=mismatches, msg="\n".join(
                    [f"The role's inputs do not match its meta/argument_specs.yml ({entry_point!r});"
                     " fix every one, then run again:"] + [f"- {error}" for error in mismatches]))
        failures = evaluate(checks, self._templar)
        result["checked"] = len(checks)
        if failures:
            result["failed"] = True
            result["failures"] = failures
            result["msg"] = report(failures, len(checks))
        else:
            result["msg"] = f"All {len(checks)} input checks passed"
        return result

    def _argument_spec_errors(self, entry_point: str, task_vars: dict) -> list[str]:
        """What ansible.builtin.validate_argument_spec reports for the role's entry point."""
        role = self._task._role
        if role is None:
            raise AnsibleError("input_checks: argument_spec needs a task of a role (tasks/validate.yml)")
        key = (role._role_path, entry_point)
        if key not in _SPECS:
            _SPECS[key] = (role._get_role_argspecs().get(entry_point) or {}).get("options")
        spec = _SPECS[key]
        if spec is None:
            raise AnsibleError(f"input_checks: the role {role.get_name()} has no entry point {entry_point!r}"
                               " with options in meta/argument_specs.yml")
        from_vars = self._templar.template({name: task_vars[name] for name in spec if name in task_vars})
        outcome = ArgumentSpecValidator(spec).validate(
            combine_vars(from_vars, role.get_role_params()), validate_role_argument_spec=True)
        return list(outcome.error_messages)


def evaluate(checks: list, templar) -> list[dict]:
    """The broken rules, in order: [{"name", "msg", and "item" for a loop}]. A templar (ansible's
    Templar) sees the task's variables; each rule gets a copy with its vars and loop item."""
    failures = []
    for number, check in enumerate(checks, start=1):
        name = check.get("name", f"rule {number}") if isinstance(check, dict) else f"rule {number}"
        problem = _shape_problem(check)
        if problem:
            failures.append({"name": name, "msg": f"this rule is malformed: {problem}"})
            break
        try:
            failures.extend(_evaluate_one(check, name, templar))
        except AnsibleError as error:
            detail = "its inputs could not be read" if check.get("no_log") else str(error.message)
            failures.append({"name": name, "msg": f"could not be checked: {detail}"})
            break
    return failures


def report(failures: list[dict], total: int) -> str:
    lines = [f"{len(failures)} of the {total} input checks failed; fix every one, then run again:"]
    for failure in failures:
        label = f" ({failure['item']})" if "item" in failure else ""
        lines.append(f"- {failure['name']}{label}: {failure['msg']}")
    return "\n".join(lines)


def _shape_problem(check: t.Any) -> str | None:
    if not isinstance(check, dict):
        return "each rule is a mapping with at least name and that"
    unknown = set(check) - RULE_KEYS
    if unknown:
        return f"unknown keys {sorted(unknown)}"
    if "that" not in check:
        return "it has no 'that'"
    that = check["that"]
    if not (isinstance(that, str) or isinstance(that, list) and all(isinstance(c, str) for c in that)):
        return "'that' must be a condition or a list of conditions"
    if not isinstance(check.get("vars", {}), dict) or not isinstance(check.get("loop_control", {}), dict):
        return "'vars' and 'loop_control' must be mappings"
    return None


def _evaluate_one(check: dict, name: str, templar) -> list[dict]:
    variables = templar.available_variables
    if check.get("vars"):
        variables = collections.ChainMap(dict(check["vars"]), variables)
    rule_templar = templar.copy_with_new_env(available_variables=variables)
    when = check.get("when", True)
    for condition in when if isinstance(when, list) else [when]:
        if not rule_templar.evaluate_conditional(condition):
            return []
    conditions = check["that"] if isinstance(check["that"], list) else [check["that"]]
    if "loop" not in check:
        return [] if _hold(conditions, rule_templar) else [_failure(check, name, rule_templar)]
    items = rule_templar.template(check["loop"])
    if not isinstance(items, list):
        raise AnsibleError(f"'loop' gave {type(items).__name__}, not a list")
    loop_var = check.get("loop_control", {}).get("loop_var", "item")
    failures = []
    for item in items:
        item_templar = templar.copy_with_new_env(
            available_variables=collections.ChainMap({loop_var: item}, variables))
        if not _hold(conditions, item_templar):
            failures.append(_failure(check, name, item_templar))
    return failures


def _hold(conditions: list, templar) -> bool:
    return all(templar.evaluate_conditional(condition) for condition in conditions)


def _failure(check: dict, name: str, templar) -> dict:
    failure = {"name": name, "msg": " ".join(str(templar.template(check.get("fail_msg", "the rule does not hold"))).split())}
    label = check.get("loop_control", {}).get("label")
    if "loop" in check and label is not None:
        failure["item"] = str(templar.template(label))
    return failure
