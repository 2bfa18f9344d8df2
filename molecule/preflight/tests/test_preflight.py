"""playbooks/preflight.yml against a fresh Debian 13 test host, with the host in every tier:
a fit inventory passes and changes nothing; each unfit host or inventory stops the run with
a message naming what to fix, before anything changes. The -e overrides stand in for a host
that is too small or unsupported, for a vault that lacks a secret, and for an image archive
that lacks the inventory's image (one run each; the other inventory failures are unit-tested
in tests/unit/test_preflight.py)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
HOST = "preflight-host"
ARCHIVE = REPO / ".cache/images/stack-images.tar"


@pytest.fixture(scope="module")
def inventory(tmp_path_factory):
    """The scenario's own inventory (the host in every tier, the fit variables of
    molecule.yml), as a file of its own that each run can override with -e."""
    molecule = yaml.safe_load((Path(__file__).parents[1] / "molecule.yml").read_text())
    path = tmp_path_factory.mktemp("preflight") / "hosts.yml"
    path.write_text(yaml.safe_dump({"all": {
        "children": {tier: {"hosts": {HOST: {}}} for tier in ("lb", "app", "worker", "db", "cache")},
        "hosts": {HOST: {"ansible_connection": "docker"}},
        "vars": molecule["provisioner"]["inventory"]["group_vars"]["all"]}}))
    return path


FAILURES = {
    "system": ({"preflight_supported_systems": ["Debian 12"]},
               f"{HOST} runs Debian 13; the roles support Debian 12 (preflight_supported_systems)."),
    "memory": ({"preflight_min_memory_mb": 100000000},
               "MiB of memory, less than preflight_min_memory_mb (100000000 MiB)."),
    "disk": ({"preflight_min_disk_free_mb": 1000000000},
             "which holds preflight_disk_path /var/lib/docker; preflight_min_disk_free_mb asks for 1000000000 MiB."),
    "secret": ({"vault_app_secret_key": ""},
               "vault_app_secret_key is missing or empty in the vault. Run `scripts/generate-secrets"),
    # The test images' archive (scripts/setup-control-node builds it) lacks the inventory's app image.
    "image": ({"app_image_source": "archive", "app_image_archive": str(ARCHIVE)},
              f"Image archive '{ARCHIVE}' does not hold shop/web:1.0.0. It holds: deployer-sample/app:1,"
              " deployer-test/nginx:1.26, deployer-test/postgres:17, deployer-test/redis:8."),
}


@pytest.fixture(scope="module")
def runs(inventory):
    """{case: (return code, output)} of one preflight run per case, the fit one included; the
    runs only read, so they run side by side."""
    # Molecule forces colour on; the assertions read plain text.
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_CALLBACK_RESULT_FORMAT="json",
               ANSIBLE_PIPELINING="true", ANSIBLE_FORCE_COLOR="false", ANSIBLE_NOCOLOR="true")
    cases = {"fit": {}, **{case: overrides for case, (overrides, _) in FAILURES.items()}}
    started = {case: subprocess.Popen(
        [str(PLAYBOOK), "-i", str(inventory), str(REPO / "playbooks" / "preflight.yml"), "-e", json.dumps(overrides)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for case, overrides in cases.items()}
    outputs = {case: run.communicate(timeout=900)[0] for case, run in started.items()}
    return {case: (started[case].returncode, " ".join(output.split())) for case, output in outputs.items()}


def test_a_fit_host_and_inventory_pass_without_a_change(runs):
    rc, out = runs["fit"]
    assert rc == 0, out
    assert f"{HOST} : ok=" in out and "changed=0" in out and "failed=0" in out, out


@pytest.mark.parametrize("case", FAILURES)
def test_each_failure_stops_the_run_naming_what_to_fix(runs, case):
    rc, out = runs[case]
    assert rc != 0 and FAILURES[case][1] in out, out
    assert "changed=0" in out and "failed=1" in out, out
