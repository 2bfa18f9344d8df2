"""The base role's background apt transaction (playbooks/common.yml starts it, copies the image
archives meanwhile, then waits): when apt fails, the wait fails with apt's own message, and a
host that has every package starts no apt run and waits for none. Before it, the download that
playbooks/prefetch.yml starts while the preflight runs: it installs nothing, the install after
it uses what it downloaded, and when it fails the install does the work itself. Runs Ansible
on the control node against the converged host; the failing runs ask for a package that does
not exist."""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
MISSING = "no-such-package-deployer-test"
# Small, in Debian 13, not on the test host.
DOWNLOADED = "tree"
PREFETCH_ENDED = "/run/deployer-apt-prefetch.ended"
# apt through a proxy that does not exist: any download or list refresh fails.
OFFLINE = "/etc/apt/apt.conf.d/99deployer-test-offline"
OFFLINE_CONF = 'Acquire::http::Proxy \\"http://127.0.0.1:9/\\"; Acquire::https::Proxy \\"http://127.0.0.1:9/\\";\\n'
PREFETCH = "    - ansible.builtin.include_role: {name: base, tasks_from: packages_prefetch}\n"
INSTALL = ("    - ansible.builtin.include_role: {name: base, tasks_from: packages_background}\n"
           "    - ansible.builtin.include_role: {name: base, tasks_from: packages_wait}\n")


def run_in_background(tmp_path, extra_packages, tasks=INSTALL):
    (tmp_path / "play.yml").write_text("""
- hosts: hardened
  gather_facts: false
  tasks:
""" + tasks)
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_FORCE_COLOR="false",
               ANSIBLE_NOCOLOR="true")
    return subprocess.run(
        [str(PLAYBOOK), "-i", os.environ["MOLECULE_INVENTORY_FILE"], str(tmp_path / "play.yml"),
         "-e", '{"base_extra_packages": %s}' % extra_packages],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("tasks", [INSTALL, PREFETCH + INSTALL], ids=["install", "download-then-install"])
def test_a_failed_apt_transaction_fails_the_wait_with_apts_message(tmp_path, tasks):
    run = run_in_background(tmp_path, f'["{MISSING}"]', tasks)
    out = run.stdout + run.stderr
    assert run.returncode != 0, out
    failed_task = out.split("fatal:")[0].rsplit("TASK [", 1)[1]
    assert failed_task.startswith("base : Wait until the packages are installed"), out
    assert f"Unable to locate package {MISSING}" in out, out


def test_a_host_with_every_package_waits_for_nothing(tmp_path):
    run = run_in_background(tmp_path, '["htop"]')
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    for task in ("base : Install the missing packages in one apt transaction",
                 "base : Wait until the apt transaction has ended",
                 "base : Wait until the packages are installed"):
        assert out.split(f"TASK [{task}]", 1)[1].split("TASK [", 1)[0].split("*\n", 1)[1].lstrip().startswith("skipping:"), out


def test_the_download_installs_nothing_and_the_install_needs_no_network_after_it(tmp_path, hardened):
    run = run_in_background(tmp_path, f'["{DOWNLOADED}"]', PREFETCH)
    out = run.stdout + run.stderr
    # apt's cache is not the server's state: the preflight after it changes nothing either.
    assert run.returncode == 0 and "changed=0" in out, out
    for _ in range(300):
        if hardened.file(PREFETCH_ENDED).exists and hardened.file(PREFETCH_ENDED).content_string.strip():
            break
        time.sleep(0.5)
    assert hardened.file(PREFETCH_ENDED).content_string.strip() == "0"
    assert not hardened.package(DOWNLOADED).is_installed
    assert hardened.run(f"ls /var/cache/apt/archives/{DOWNLOADED}_*.deb").rc == 0

    # As playbooks/prefetch.yml and playbooks/common.yml run them, with apt cut off from its
    # mirrors once the download ended: the install must find the package downloaded.
    try:
        run = run_in_background(tmp_path, f'["{DOWNLOADED}"]', PREFETCH + f"""\
    - ansible.builtin.wait_for: {{path: {PREFETCH_ENDED}, search_regex: '^[0-9]+$', timeout: 300}}
    - ansible.builtin.copy: {{dest: {OFFLINE}, content: "{OFFLINE_CONF}", mode: "0644"}}
""" + INSTALL)
        out = run.stdout + run.stderr
        assert run.returncode == 0, out
        assert hardened.package(DOWNLOADED).is_installed
    finally:
        hardened.run(f"rm -f {OFFLINE}; apt-get purge -y -qq {DOWNLOADED}")
