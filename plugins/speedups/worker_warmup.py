# One-time work of every worker done once, in the strategy process, before the workers fork.
#
# Ansible forks a worker for each task and host; the worker starts from the strategy process's
# memory and its caches die with it. So each worker that runs a module again imported the JSON
# profile module results are decoded with, loaded the action plugin from its file, and worked
# out the typed fields of a task result (typing.get_type_hints over the result dataclass, which
# functools.cache keeps, but only in the worker). Done here once, those are inherited by every
# later fork: about 12 ms of a worker's 57 ms of CPU here, 1.5 to 2.5 CPU s a run of 40
# module tasks on 4 hosts (bench/README.md).
#
# Nothing here changes a result: it fills the caches a worker would fill, with the same calls.
# It uses ansible-core internals (2.19 and later); when they are not as expected, `install`
# returns the strategy unchanged, and a warm-up that fails leaves the work to the worker.
# plugins/strategy/mitogen_linear.py installs it; DEPLOYER_WORKER_WARMUP=off turns it off.
from __future__ import annotations

import importlib
import os

# How a worker decodes a module's result (ansible/executor/module_common.py and
# ansible/plugins/action/__init__.py import it on the first result).
RESULT_PROFILE = "ansible.module_utils._internal._json._profiles._module_legacy_m2c"


def install(strategy_class: type) -> type:
    """A subclass of strategy_class that warms the workers' caches before they fork;
    strategy_class itself when it is turned off or ansible-core's internals are not the ones
    this knows."""
    if os.environ.get("DEPLOYER_WORKER_WARMUP", "").lower() in ("off", "false", "0", "no"):
        return strategy_class
    try:
        from ansible._internal._task import UnifiedTaskResult
        from ansible.plugins.loader import action_loader, module_loader
        importlib.import_module(RESULT_PROFILE)
        for source_is_module in (True, False):
            UnifiedTaskResult.get_result_key_to_resolved_field_mapping(source_is_module=source_is_module)
    except (ImportError, AttributeError, TypeError):
        return strategy_class

    warmed = set()

    def load_action(task):
        """Find the module and load the action plugin the worker will run the task with, by the
        names TaskExecutor._get_action_handler_with_module_context uses: the module's own
        action plugin, one named like the module (`template`), or `normal` for a plain module."""
        collections = task.collections
        module = module_loader.find_plugin_with_context(task.action, collection_list=collections)
        if module.resolved and module.action_plugin:
            action_loader.get(module.action_plugin, class_only=True, collection_list=collections)
        elif action_loader.has_plugin(task.action, collection_list=collections):
            action_loader.get(task.action, class_only=True, collection_list=collections)
        else:
            action_loader.get("ansible.legacy.normal", class_only=True)

    class WorkerWarmup(strategy_class):
        def _queue_task(self, host, task, task_vars, play_context):
            key = (task.action, tuple(task.collections or ()))
            if key not in warmed:
                warmed.add(key)
                try:
                    load_action(task)
                except Exception:  # noqa: BLE001 - the worker loads it again and reports any error
                    pass
            return super()._queue_task(host, task, task_vars, play_context)

    WorkerWarmup.__name__ = WorkerWarmup.__qualname__ = strategy_class.__name__
    return WorkerWarmup
