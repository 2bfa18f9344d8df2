# The default strategy (ansible.cfg; Molecule's base config): Ansible's linear strategy run
# through Mitogen (pip package `mitogen`, pinned in requirements.txt), which keeps one Python
# interpreter per host instead of starting one per task: about 3 times fewer seconds per
# task here (bench/README.md). Third-party strategies are deprecated since ansible-core 2.19,
# so Ansible prints a deprecation warning; when Mitogen cannot load (not installed, or a
# later ansible-core refuses it), this falls back to Ansible's own linear strategy with a
# warning. `ANSIBLE_STRATEGY=linear` chooses the plain strategy outright.
try:
    from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule  # noqa: F401
except Exception as error:  # noqa: BLE001 - any failure to load means: run without Mitogen
    from ansible.plugins.strategy.linear import StrategyModule  # noqa: F401
    from ansible.utils.display import Display

    Display().warning(f"Mitogen did not load ({error}); running Ansible's own linear strategy.")
else:
    import ansible.collections.list
    import ansible_mitogen.planner

    # Before it runs a module from a collection (community.docker, community.general, ...),
    # Mitogen lists the directories of every installed collection, which imports each
    # collection's package and parses its meta/runtime.yml. It does so in the worker process
    # Ansible forks for each task, so the work is thrown away with the worker: about 0.1 s per
    # such task here, with the ~50 collections of the `ansible` package. Listing them once
    # in this process, before any worker forks, leaves the packages imported for every worker,
    # and the workers reuse the list (collections do not change during a run).
    COLLECTION_DIRS = tuple(
        path.decode("utf-8") for path in ansible.collections.list.list_collection_dirs()
    )

    def _load_collections(invocation):
        invocation._extra_sys_paths.update(COLLECTION_DIRS)

    # Only where Mitogen still has the function this replaces; otherwise keep Mitogen's own.
    if callable(getattr(ansible_mitogen.planner, "_load_collections", None)):
        ansible_mitogen.planner._load_collections = _load_collections
