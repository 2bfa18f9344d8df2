"""Hosts of the firewall scenario, and which phase it is in: the first verify runs with the
firewall applied, the second after side_effect removed it."""
import pytest
import testinfra

SERVER = "firewall-server"


def _host(request, name):
    return testinfra.get_host(
        f"ansible://{name}", ansible_inventory=request.config.option.ansible_inventory)


@pytest.fixture(scope="session")
def server(request):
    return _host(request, SERVER)


@pytest.fixture(scope="session")
def allowed(request):
    return _host(request, "firewall-allowed")


@pytest.fixture(scope="session")
def denied(request):
    return _host(request, "firewall-denied")


@pytest.fixture(scope="session")
def removed(server):
    return server.file("/var/lib/molecule-firewall-phase").exists


@pytest.fixture
def applied_phase(removed):
    if removed:
        pytest.skip("side_effect removed the firewall; this checks the applied firewall")


@pytest.fixture
def removed_phase(removed):
    if not removed:
        pytest.skip("the firewall is applied; this checks what removing it leaves")
