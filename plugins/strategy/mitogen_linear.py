# Opt-in faster task execution: `ANSIBLE_STRATEGY=mitogen_linear ansible-playbook ...` runs
# the linear strategy through Mitogen (pip package `mitogen`, pinned in requirements.txt),
# which keeps one Python interpreter per host instead of starting one per task. Without that
# variable Ansible's own linear strategy runs. Third-party strategies are deprecated since
# ansible-core 2.19: if a future ansible-core drops them, leave the variable unset.
# Figures: bench/README.md.
from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule  # noqa: F401
