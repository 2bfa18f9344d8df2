"""After the role ran with docker_enabled: false (remove.yml): what it installed is gone, and
the data it was not asked to delete is still there."""

import pytest


@pytest.mark.parametrize(
    "package",
    # containerd and runc came in only as dependencies, so autoremove takes them too.
    ["docker.io", "docker-cli", "docker-compose", "containerd", "runc"],
)
def test_package_is_removed(host, package):
    assert not host.package(package).is_installed


def test_docker_command_is_gone(host):
    assert host.run("command -v docker").rc != 0


@pytest.mark.parametrize(
    "path",
    [
        "/etc/docker/daemon.json",
        "/etc/systemd/system/docker-prune.service",
        "/etc/systemd/system/docker-prune.timer",
    ],
)
def test_file_is_removed(host, path):
    assert not host.file(path).exists


def test_prune_timer_is_unknown_to_systemd(host):
    units = host.run("systemctl list-units --all --no-legend 'docker*'").stdout
    assert "docker-prune" not in units, units


def test_docker_group_is_removed(host):
    assert not host.group("docker").exists


def test_images_are_kept_without_docker_remove_data_enabled(host):
    # verify imported docker-role-test/tiny before the removal.
    repositories = host.file("/var/lib/docker/image/overlay2/repositories.json")
    assert repositories.exists and "docker-role-test/tiny" in repositories.content_string
