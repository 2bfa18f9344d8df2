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
