"""Fixtures of the hardening scenario's tests: the hardened host seen from any test, and its
sshd journal for failure messages."""
import os

import pytest
import testinfra


@pytest.fixture(scope="module")
def hardened():
    return testinfra.get_host(
        "ansible://hardened", ansible_inventory=os.environ["MOLECULE_INVENTORY_FILE"])


@pytest.fixture(scope="module")
def sshd_log(hardened):
    def read():
        return "\n--- sshd journal on hardened ---\n" + hardened.run(
            "journalctl -u ssh --no-pager -n 40").stdout
    return read
