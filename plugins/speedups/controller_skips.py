# Tasks whose `when` is false on a host, skipped by the control node without a worker.
#
# Ansible forks a worker process for every task and host, and only the worker evaluates the
# task's `when`: a skipped task costs a fork and a worker's start-up like any other. A run of
# site.yml skips about 85 tasks on one host and 90 on each of four (roles that are off, paths
# for hosts in another state); their forks and workers took 3.4 s of a cold deploy on one
# host and 10.6 s on four (bench/README.md). This evaluates the `when` of a task without a loop and without
# delegate_to in the strategy process first, the way the worker would (the same variables,
# with the play context's connection variables, inside ansible-core's TaskContext): when it
# is false, the strategy records the same skipped result a worker would have sent, without
# forking; when it is true, or cannot be decided here (an error, a loop, delegate_to), the
# task goes to a worker as before, which evaluates the `when` again and reports any error.
#
# It uses ansible-core internals (2.19 and later: TaskContext, UnifiedTaskResult,
# WireTaskResult). When they are not as expected, `install` returns the strategy unchanged.
# plugins/strategy/mitogen_linear.py installs it; DEPLOYER_CONTROLLER_SKIPS=off turns it off.
from __future__ import annotations

import os


def install(strategy_class: type) -> type:
    """A subclass of strategy_class that skips on the control node; strategy_class itself when
    it is turned off or ansible-core's internals are not the ones this knows."""
    if os.environ.get("DEPLOYER_CONTROLLER_SKIPS", "").lower() in ("off", "false", "0", "no"):
        return strategy_class
    try:
        from ansible._internal import _display_utils
        from ansible._internal._task import TaskContext, UnifiedTaskResult, WireTaskResult
        for needed in (TaskContext.create, UnifiedTaskResult.record_conditional_false,
                       UnifiedTaskResult.finalize_registered_values, UnifiedTaskResult.finalize_warnings,
                       _display_utils.DeferredWarningContext, strategy_class._queue_task,
                       strategy_class._convert_wire_task_result_to_host_task_result):
            if not callable(needed):
                return strategy_class
    except (ImportError, AttributeError):
        return strategy_class

    def skipped_result(task, host, task_vars, play_context, loader):
        """What a worker would send for the task on host when its `when` is false there, or
        None when the task is to run or a worker has to decide."""
        if not task.when or task.loop is not None or task.loop_with or task.delegate_to:
            return None
        variables = task_vars.copy()  # TaskContext.create adds to them; the strategy keeps task_vars
        try:
            with TaskContext.create(task=task, task_vars=variables, host_name=host.name) as task_ctx:
                with _display_utils.DeferredWarningContext(variables=variables) as warnings:
                    # As TaskExecutor.run and _execute_internal prepare them for the `when`.
                    variables["ansible_search_path"] = task.get_search_path()
                    if loader.get_basedir() not in variables["ansible_search_path"]:
                        variables["ansible_search_path"].append(loader.get_basedir())
                    templar = task_ctx.task_templar
                    context = play_context.set_task_and_variable_override(task=task, variables=variables,
                                                                          templar=templar)
                    context.post_validate(templar=templar)
                    if not context.remote_addr:
                        context.remote_addr = host.address
                    with_magic_vars = variables.copy()
                    context.update_vars(with_magic_vars)
                    true, false_condition = task._resolve_conditional_with_item(task.when, with_magic_vars)
                    if true:
                        return None  # the worker shows any warning again
                    utr = UnifiedTaskResult.record_conditional_false(false_condition)
                    task.update_result_no_log(templar, utr)
                utr.finalize_warnings(warnings)
                # As WorkerProcess._run does, after the warnings are final.
                utr.finalize_registered_values()
        except Exception:  # noqa: BLE001 - undecided here: the worker evaluates it and reports errors
            return None
        # As WorkerProcess._run sends it; ignore_errors and ignore_unreachable from the result,
        # which the worker writes onto its own copy of the task.
        return WireTaskResult(host_name=host.name, task_uuid=task._uuid, utr=utr,
                              task_fields={**task.dump_attrs(), "ignore_errors": utr.ignore_errors,
                                           "ignore_unreachable": utr.ignore_unreachable})

    class ControllerSkips(strategy_class):
        def _queue_task(self, host, task, task_vars, play_context):
            wire_result = skipped_result(task, host, task_vars, play_context, self._loader)
            if wire_result is None:
                return super()._queue_task(host, task, task_vars, play_context)
            # What StrategyBase._queue_task and results_thread_main do for a worker's result.
            self._queued_task_cache[(host.name, task._uuid)] = {
                "host": host, "task": task, "task_vars": task_vars, "play_context": play_context}
            self._tqm.send_callback("v2_runner_on_start", host, task)
            result = self._convert_wire_task_result_to_host_task_result(wire_result)
            with self._results_lock:
                self._results.append(result)
            self._pending_results += 1

    ControllerSkips.__name__ = ControllerSkips.__qualname__ = strategy_class.__name__
    return ControllerSkips
