"""The deploy user can run a deploy: Ansible on the control node logs in over SSH with the
deploy key on the new port, becomes root through sudo and runs modules that need root."""
import json
import os
import subprocess
import sys
from pathlib import Path

from ports import SSH_PORT

ANSIBLE = Path(sys.executable).parent / "ansible"


def hardened_address():
    network = "molecule-" + os.environ["MOLECULE_SCENARIO_NAME"]
    out = subprocess.run(["docker", "inspect", "hardened"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)[0]["NetworkSettings"]["Networks"][network]["IPAddress"]


def ansible_as_deploy(module, args):
    key = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "id_ed25519"
    env = dict(os.environ, ANSIBLE_LOAD_CALLBACK_PLUGINS="True", ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    return subprocess.run(
        [str(ANSIBLE), "all", "-i", hardened_address() + ",", "-u", "deploy",
         "--private-key", str(key), "-e", f"ansible_port={SSH_PORT}",
         # A throwaway host: keep its key out of the control node's known_hosts.
         "--ssh-common-args=-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
         "-e", "ansible_python_interpreter=/usr/bin/python3", "--become",
         "-m", module, "-a", args],
        env=env, capture_output=True, text=True, timeout=120)


def result(run):
    assert run.returncode == 0, run.stdout + run.stderr
    return next(iter(json.loads(run.stdout)["plays"][0]["tasks"][0]["hosts"].values()))


def test_ansible_becomes_root_over_ssh():
    assert result(ansible_as_deploy("ansible.builtin.command", "id -u"))["stdout"] == "0"


def test_ansible_reads_a_root_only_file_over_ssh():
    # /etc/sudoers.d/50-deployer is 0440 root:root: only root can read it.
    run = ansible_as_deploy("ansible.builtin.slurp", "src=/etc/sudoers.d/50-deployer")
    assert "content" in result(run), run.stdout
