"""A host's first release (roles/app): its workers and beat start beside the web slot instead
of after it, and when the release fails none of its services stays up, since there is no
earlier release to return to. Runs the app role from the control node, on the converged host,
as a second stack whose web service cannot start (its WSGI module does not exist)."""
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
INPUTS = Path(__file__).parents[1] / "vars" / "inputs.yml"
STACK = "firstfail"


def test_a_failed_first_release_stops_every_service_it_started(host, tmp_path):
    play = [{"hosts": "all", "gather_facts": False, "vars_files": [str(INPUTS)], "tasks": [
        {"ansible.builtin.include_role": {"name": "app"},
         "vars": {"app_stack_name": STACK, "app_module": "no_such_module:app", "app_release_command": [],
                  "app_static_path": "", "app_wait_timeout": 30}}]}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_FORCE_COLOR="false",
               ANSIBLE_NOCOLOR="true")
    try:
        run = subprocess.run(
            [str(PLAYBOOK), "-i", os.environ["MOLECULE_INVENTORY_FILE"], str(tmp_path / "play.yml")],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        out = " ".join((run.stdout + run.stderr).split())
        assert run.returncode != 0, out
        started_early = out.split("TASK [app : Start workers and beat beside the web slot of a first release]", 1)
        assert len(started_early) == 2 and started_early[1].lstrip("* ").startswith("changed:"), out
        assert "did not become healthy" in out, out
        assert "No earlier release was recorded on this host; its services are stopped." in out, out
        project = f"docker compose -p {STACK}-app ps --format '{{{{.Service}}}} {{{{.State}}}}'"
        assert host.run(f"{project} --status running").stdout.strip() == "", out
        # Stopped, not removed: their logs stay readable.
        services = {line.split()[0] for line in host.run(f"{project} --all").stdout.split("\n") if line}
        assert {"worker", "beat"} <= services, out
    finally:
        host.run(f"docker compose -p {STACK}-app down --remove-orphans; docker network rm {STACK};"
                 f" rm -rf /opt/{STACK}")
