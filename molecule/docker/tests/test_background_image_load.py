"""The first deploy's background image load (playbooks/common.yml: container_image's stage.yml
copies an archive while apt runs, the docker role's daemon_early.yml restarts the engine for
daemon.json, load_staged.yml starts `docker load`, present.yml waits for it): a good archive
ends as an image on the host with no archive left behind; a broken one fails the role with
Docker's own message, and is deleted too. Runs Ansible on the control node against the
converged host, with an archive saved on the control node's Docker."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
IMAGE = "docker-role-test/background-load:1"
STAGING = "/var/cache/deployer/images"


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """An image of one empty layer, saved to an archive on the control node."""
    path = tmp_path_factory.mktemp("archive") / "background-load.tar"
    subprocess.run(f"tar -cf - -T /dev/null | docker import - {IMAGE}", shell=True, check=True,
                   capture_output=True)
    try:
        subprocess.run(["docker", "save", "-o", str(path), IMAGE], check=True)
    finally:
        subprocess.run(["docker", "rmi", IMAGE], check=True, capture_output=True)
    return path


def stage_load_then_make_present(tmp_path, archive_path):
    (tmp_path / "play.yml").write_text(f"""
- hosts: all
  gather_facts: false
  vars:
    container_image_archive: {archive_path}
  tasks:
    - ansible.builtin.include_role: {{name: container_image, tasks_from: stage}}
    - ansible.builtin.include_role: {{name: container_image, tasks_from: load_staged}}
    - ansible.builtin.include_role: {{name: container_image}}
      vars:
        container_image_name: {IMAGE}
        container_image_source: archive
""")
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_FORCE_COLOR="false",
               ANSIBLE_NOCOLOR="true")
    return subprocess.run(
        [str(PLAYBOOK), "-i", os.environ["MOLECULE_INVENTORY_FILE"], str(tmp_path / "play.yml")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_a_background_load_leaves_the_image_and_no_archive(host, tmp_path, archive):
    host.run(f"docker rmi {IMAGE}")
    run = stage_load_then_make_present(tmp_path, archive)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "TASK [container_image : Load the staged image archive in the background]" in out, out
    assert host.run(f"docker image inspect {IMAGE}").rc == 0, out
    assert not host.file(f"{STAGING}/{archive.name}").exists, out
    host.run(f"docker rmi {IMAGE}")


def test_a_broken_archive_fails_with_dockers_message_and_is_deleted(host, tmp_path):
    broken = tmp_path / "broken-image.tar"
    broken.write_text("not an image archive\n")
    run = stage_load_then_make_present(tmp_path, broken)
    out = run.stdout + run.stderr
    assert run.returncode != 0, out
    failed_task = out.split("fatal:")[0].rsplit("TASK [", 1)[1]
    assert failed_task.startswith("container_image : Wait for the background load of the archive"), out
    # Docker's own words for a file that is no tar archive.
    assert "stderr: unexpected EOF" in out.split("fatal:", 1)[1], out
    assert not host.file(f"{STAGING}/{broken.name}").exists, out
