"""Image archives shipped to a host (roles/container_image), cut down on the control node to
the images the host runs (plugins/action/image_archive.py), into the Docker that the docker
role installed from Debian:
- the first deploy's background load (playbooks/common.yml: stage.yml copies the cut archive
  while apt runs, the docker role's daemon_early.yml restarts the engine for daemon.json,
  load_staged.yml starts `docker load`, present.yml waits for it): the host ends with the image
  it runs, not the archive's other one, and no archive left behind; an archive whose layer is
  damaged fails the role with Docker's own message, and is deleted too; an archive that lacks
  the image fails before anything is copied;
- an archive that Docker >= 25 saved (the OCI layout), cut and loaded by present.yml.
Runs Ansible on the control node against the converged host, with archives saved by the
control node's Docker (the layout of Docker < 25) and by the host's."""
import io
import os
import subprocess
import tarfile
import sys
from pathlib import Path

import pytest

REPO = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
IMAGE = "docker-role-test/background-load:1"
OTHER = "docker-role-test/not-run-here:1"
STAGING = "/var/cache/deployer/images"
# What Debian's Docker says loading a layer that is no tar archive.
DAMAGED_LAYER_MESSAGE = "stderr: 'archive/tar: invalid tar header'"


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """Two images of one small layer each, saved to one archive by the control node's Docker."""
    path = tmp_path_factory.mktemp("archive") / "background-load.tar"
    for number, image in enumerate((IMAGE, OTHER)):
        subprocess.run(f"echo {number} > /tmp/layer-file-{number} && tar -C /tmp -cf - layer-file-{number}"
                       f" | docker import - {image}", shell=True, check=True, capture_output=True)
    try:
        subprocess.run(["docker", "save", "-o", str(path), IMAGE, OTHER], check=True)
    finally:
        subprocess.run(["docker", "rmi", IMAGE, OTHER], check=True, capture_output=True)
    return path


def run_play(tmp_path, tasks):
    (tmp_path / "play.yml").write_text(f"""
- hosts: all
  gather_facts: false
  tasks:{tasks}""")
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_FORCE_COLOR="false",
               ANSIBLE_NOCOLOR="true")
    return subprocess.run(
        [str(PLAYBOOK), "-i", os.environ["MOLECULE_INVENTORY_FILE"], str(tmp_path / "play.yml")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def stage_load_then_make_present(tmp_path, archive_path, images=(IMAGE,), compress=False):
    return run_play(tmp_path, f"""
    - ansible.builtin.include_role: {{name: container_image, tasks_from: stage}}
    - ansible.builtin.include_role: {{name: container_image, tasks_from: load_staged}}
    - ansible.builtin.include_role: {{name: container_image}}
      vars:
        container_image_name: {IMAGE}
        container_image_source: archive
  vars:
    container_image_archive: {archive_path}
    container_image_archive_images: {list(images)}
    container_image_archive_compress: {compress}
    container_image_cut_dir: {tmp_path}/cuts""")


def failed_task(out):
    return out.split("fatal:")[0].rsplit("TASK [", 1)[1]


def test_a_background_load_leaves_the_image_the_host_runs_and_no_archive(host, tmp_path, archive):
    host.run(f"docker rmi {IMAGE} {OTHER}")
    run = stage_load_then_make_present(tmp_path, archive)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "TASK [container_image : Load the staged image archive in the background]" in out, out
    assert host.run(f"docker image inspect {IMAGE}").rc == 0, out
    # The archive's other image did not travel.
    assert host.run(f"docker image inspect {OTHER}").rc != 0, out
    [cut] = (tmp_path / "cuts").glob("*.tar")
    assert cut.stat().st_size < archive.stat().st_size
    assert not host.file(f"{STAGING}/{archive.name}").exists, out
    host.run(f"docker rmi {IMAGE}")


def test_a_zstd_compressed_cut_travels_and_loads_in_the_background(host, tmp_path, archive):
    """As on Debian 13, where the role compresses what it ships: Debian 13's Docker loads it."""
    host.run(f"docker rmi {IMAGE} {OTHER}")
    run = stage_load_then_make_present(tmp_path, archive, compress=True)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    [cut] = (tmp_path / "cuts").glob("*.tar.zst")
    assert cut.read_bytes().startswith(b"\x28\xb5\x2f\xfd")
    assert host.run(f"docker image inspect {IMAGE}").rc == 0, out
    assert host.run(f"docker image inspect {OTHER}").rc != 0, out
    assert not host.file(f"{STAGING}/{archive.name}").exists, out
    host.run(f"docker rmi {IMAGE}")


def test_a_damaged_layer_fails_with_dockers_message_and_is_deleted(host, tmp_path, archive):
    """The control node finds the archive whole (its manifest names files it holds); Docker
    finds the layer is no tar archive, and says so."""
    damaged = tmp_path / "damaged-image.tar"
    with tarfile.open(archive) as source, tarfile.open(damaged, "w") as out:
        for member in source.getmembers():
            data = source.extractfile(member).read() if member.isfile() else None
            if member.name.endswith("/layer.tar"):
                data = b"not a layer" * 100
                member.size = len(data)
            out.addfile(member, io.BytesIO(data) if data is not None else None)
    host.run(f"docker rmi {IMAGE}")
    run = stage_load_then_make_present(tmp_path, damaged)
    out = run.stdout + run.stderr
    assert run.returncode != 0, out
    assert failed_task(out).startswith("container_image : Wait for the background load of the archive"), out
    assert DAMAGED_LAYER_MESSAGE in out.split("fatal:", 1)[1], out
    assert not host.file(f"{STAGING}/{damaged.name}").exists, out


def test_an_archive_without_the_image_fails_before_anything_is_copied(host, tmp_path, archive):
    run = stage_load_then_make_present(tmp_path, archive, images=("docker-role-test/absent:1",))
    out = run.stdout + run.stderr
    assert run.returncode != 0, out
    assert failed_task(out).startswith("container_image : Cut the images this host runs out of the archive"), out
    assert (f"Image archive '{archive}' does not hold docker-role-test/absent:1. It holds: {IMAGE}, {OTHER}."
            in out), out
    assert not host.file(f"{STAGING}/{archive.name}").exists, out


def test_an_archive_saved_by_docker_25_or_later_is_cut_and_loaded(host, tmp_path):
    """Debian's Docker saves in the OCI layout (blobs/sha256, index.json): the role, finding
    its image missing, ships only that image and loads it."""
    for image in (IMAGE, OTHER):
        host.run_test(f"tar -C /etc -cf - hostname | docker import - {image}")
    assert host.run_test(f"docker save -o /var/tmp/oci-layout.tar {IMAGE} {OTHER}").rc == 0
    assert host.run_test("tar -tf /var/tmp/oci-layout.tar index.json").rc == 0
    saved = tmp_path / "oci-layout.tar"
    subprocess.run(["docker", "cp", f"{host.backend.get_hostname()}:/var/tmp/oci-layout.tar", str(saved)], check=True)
    host.run(f"docker rmi {IMAGE} {OTHER} && rm -f /var/tmp/oci-layout.tar")
    run = run_play(tmp_path, f"""
    - ansible.builtin.include_role: {{name: container_image}}
      vars:
        container_image_name: {OTHER}
        container_image_source: archive
        container_image_archive: {saved}
        container_image_cut_dir: {tmp_path}/cuts""")
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert host.run(f"docker image inspect {OTHER}").rc == 0, out
    assert host.run(f"docker image inspect {IMAGE}").rc != 0, out
    host.run(f"docker rmi {OTHER}")


def test_after_daemon_early_the_role_leaves_the_daemon_alone(tmp_path):
    # playbooks/common.yml's order: daemon_early once apt has installed Docker, the role later,
    # while the archives load; a restart then would cut a load short.
    run = run_play(tmp_path, """
    - ansible.builtin.setup: {gather_subset: [min]}
    - ansible.builtin.include_role: {name: docker, tasks_from: daemon_early}
    - ansible.builtin.include_role: {name: docker}""")
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    for task in ("docker : Configure the Docker daemon", "docker : Enable and start the Docker service"):
        early, role = [section.split("*\n", 1)[1].lstrip() for section in out.split(f"TASK [{task}]")[1:]]
        assert early.startswith(("ok:", "changed:")), out
        assert role.startswith("skipping:"), out
