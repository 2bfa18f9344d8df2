# Tasks that never touch the host, run in the strategy process instead of a forked worker.
#
# Ansible forks a worker process for every task and host, also for the tasks whose action
# runs on the control node only: set_fact, assert, fail, debug, include_tasks, include_role,
# the role argument validation Ansible adds, and this project's input_checks. About half of
# the tasks site.yml runs are such tasks; each costs a fork, the worker's start-up and its
# result's trip through the results queue, for a few milliseconds of work.
#
# This runs such a task where the strategy queues it, with what a worker runs
# (WorkerProcess._run: TaskContext, Task.squash, TaskExecutor) on copies of the task and its
# variables (a worker gets them by fork and mutates its own copies), and sends the result
# through the same queue a worker sends it through. Tasks that could block the strategy stay
# with workers: `until`/retries, async, a timeout, a loop pause; so do any other action and
# every task of a strategy where these internals are not the ones this knows.
#
# It uses ansible-core internals (2.19 and later: TaskContext, TaskExecutor taking its task
# from the context, FinalQueue.send_task_result). When they are not as expected, `install`
# returns the strategy unchanged. plugins/strategy/mitogen_linear.py installs it;
# DEPLOYER_CONTROLLER_ACTIONS=off turns it off.
from __future__ import annotations

import inspect
import os

# Actions whose plugins run on the control node only and return quickly. Not include_vars or
# image_archive: they read files, which can take long enough to hold the other hosts up.
ACTIONS = {"set_fact", "assert", "fail", "debug", "include_tasks", "include_role",
           "validate_argument_spec", "input_checks"}


def install(strategy_class: type) -> type:
    """A subclass of strategy_class that runs ACTIONS in its own process; strategy_class itself
    when it is turned off or ansible-core's internals are not the ones this knows."""
    if os.environ.get("DEPLOYER_CONTROLLER_ACTIONS", "").lower() in ("off", "false", "0", "no"):
        return strategy_class
    try:
        from ansible import constants as C
        from ansible.executor.task_executor import TaskExecutor
        from ansible.executor.task_queue_manager import FinalQueue
        from ansible.plugins import loader as plugin_loader
        from ansible._internal._task import TaskContext

        executor_parameters = list(inspect.signature(TaskExecutor.__init__).parameters)
        if executor_parameters != ["self", "host", "play_context", "loader", "shared_loader_obj", "final_q",
                                   "variable_manager"]:
            return strategy_class  # TaskExecutor takes its task from elsewhere than TaskContext
        for needed in (TaskContext.create, FinalQueue.send_task_result, strategy_class._queue_task,
                       plugin_loader.get_plugin_loader_namespace):
            if not callable(needed):
                return strategy_class
        # Each as written, ansible.builtin.* and ansible.legacy.*.
        actions = {name for action in ACTIONS for name in C.add_internal_fqcns((action,))}
    except (ImportError, AttributeError, TypeError, ValueError):
        return strategy_class

    def runs_here(task) -> bool:
        return (task.action in actions and not task.until and not task.async_val and not task.timeout
                and not (task.loop_control and task.loop_control.pause))

    class ControllerActions(strategy_class):
        def _queue_task(self, host, task, task_vars, play_context):
            if not runs_here(task):
                return super()._queue_task(host, task, task_vars, play_context)
            # What StrategyBase._queue_task records and announces for a worker.
            self._queued_task_cache[(host.name, task._uuid)] = {
                "host": host, "task": task, "task_vars": task_vars, "play_context": play_context}
            self._tqm.send_callback("v2_runner_on_start", host, task)
            # What WorkerProcess.run and _run do, on copies of what the worker gets by fork.
            own_task = task.copy(exclude_tasks=True)
            with TaskContext.create(task=own_task, task_vars=task_vars.copy(), host_name=host.name):
                own_task.squash()
                utr = TaskExecutor(host, play_context, self._loader, plugin_loader.get_plugin_loader_namespace(),
                                   self._final_q, self._variable_manager).run()
                utr.finalize_registered_values()
            own_task.ignore_errors = utr.ignore_errors
            own_task.ignore_unreachable = utr.ignore_unreachable
            self._final_q.send_task_result(host, own_task, utr)
            self._pending_results += 1

    ControllerActions.__name__ = ControllerActions.__qualname__ = strategy_class.__name__
    return ControllerActions
