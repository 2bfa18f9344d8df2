"""What a user of the firewall notices: a port Docker publishes answers the hosts the rules
allow and silently drops everyone else, exactly like a host service; SSH stays open; Docker's
own rules and container networking keep working; removing the firewall leaves nothing behind."""
import time

import pytest

SERVER = "firewall-server"
# Nothing would drop a probe to these but the firewall: a drop shows as a timeout,
# a port the firewall lets through but nobody listens on as "connection refused".
CONNECT = "timeout 2 bash -c '</dev/tcp/%s/%s'"
TIMED_OUT = 124
REFUSED = 1


def connect(peer, port):
    return peer.run(CONNECT, SERVER, str(port)).rc


def http_status(peer, port):
    return peer.run(
        "curl -s -o /dev/null -w '%%{http_code}' --max-time 5 http://%s:%s/", SERVER, str(port)
    ).stdout


def evidence(server):
    """Container logs and both rulesets, for failure messages."""
    return "\n".join([
        server.run("docker logs --tail 20 probe-published 2>&1").stdout,
        server.run("docker ps -a").stdout,
        server.run("nft list ruleset").stdout,
        server.run("journalctl -u deployer-firewall --no-pager -n 20").stdout,
    ])


def wait_for_status(peer, port, expected, seconds=30):
    for _ in range(seconds):
        status = http_status(peer, port)
        if status == expected:
            return status
        time.sleep(1)
    return status


@pytest.mark.usefixtures("applied_phase")
class TestApplied:
    def test_published_port_answers_the_allowed_host(self, server, allowed):
        assert http_status(allowed, 5432) == "200", evidence(server)

    def test_published_port_drops_other_hosts(self, server, denied):
        assert connect(denied, 5432) == TIMED_OUT, evidence(server)

    def test_published_port_in_no_rule_drops_everyone(self, server, allowed):
        assert connect(allowed, 6380) == TIMED_OUT, evidence(server)

    def test_host_service_follows_the_same_rules(self, server, allowed, denied):
        assert http_status(allowed, 9000) == "200", evidence(server)
        assert connect(denied, 9000) == TIMED_OUT, evidence(server)

    def test_ssh_port_is_open_to_everyone_and_other_ports_are_not(self, server, denied):
        # No sshd runs on the test host: "refused" proves the firewall let the probe through.
        assert connect(denied, 22) == REFUSED, evidence(server)
        assert connect(denied, 2222) == TIMED_OUT, evidence(server)

    def test_docker_rules_are_still_there(self, server):
        assert "table inet deployer_firewall" in server.run("nft list tables").stdout
        nat = server.run("nft list table ip nat").stdout
        assert "chain DOCKER" in nat and "dport 5432" in nat and "dnat to" in nat, nat

    def test_containers_still_reach_other_hosts(self, server, allowed):
        address = allowed.interface("eth0").addresses[0]
        cmd = server.run(
            "docker exec probe-published python3 -c "
            "'import urllib.request; print(urllib.request.urlopen(\"http://%s:9000/\", timeout=5).status)'",
            address)
        assert cmd.stdout.strip() == "200", cmd.stderr + evidence(server)

    def test_a_container_reaches_its_hosts_address_only_where_the_rule_lets_local_containers(self, server):
        """Like nginx proxying to an app published on its own host's private address: the
        connection comes from the container's docker network, not from that address."""
        address = server.interface("eth0").addresses[0]
        probe = ("docker exec probe-published python3 -c 'import sys, urllib.request; "
                 "print(urllib.request.urlopen(sys.argv[1], timeout=3).status)' http://%s:%s/")
        assert server.run(probe, address, "5432").stdout.strip() == "200", evidence(server)
        # The host service's rule lets in the allowed host only, and 6380 is in no rule.
        for port in ("9000", "6380"):
            blocked = server.run(probe, address, port)
            assert "timed out" in blocked.stderr, f"{port}: {blocked.stdout}{blocked.stderr}" + evidence(server)

    def test_an_input_only_firewall_would_not_hold_for_published_ports(self, server, denied):
        """The input chain alone is a naive host firewall: Docker's DNAT sends the published
        port past it. Our forward chain is what holds."""
        flush = server.run("nft flush chain inet deployer_firewall forward")
        assert flush.rc == 0, flush.stderr
        try:
            assert connect(denied, 5432) == 0, evidence(server)
        finally:
            reload = server.run("systemctl reload deployer-firewall")
        assert reload.rc == 0, reload.stderr + evidence(server)
        assert connect(denied, 5432) == TIMED_OUT, evidence(server)

    def test_firewall_survives_a_docker_restart(self, server, allowed, denied):
        restart = server.run("systemctl restart docker")
        assert restart.rc == 0, restart.stderr
        assert wait_for_status(allowed, 5432, "200") == "200", evidence(server)
        assert connect(denied, 5432) == TIMED_OUT, evidence(server)

    def test_firewall_loads_at_boot_before_docker(self, server):
        assert server.service("deployer-firewall").is_enabled
        docker_after = server.run("systemctl show -p After --value docker.service").stdout
        assert "deployer-firewall.service" in docker_after, docker_after
        # Its /etc/nftables.conf starts with `flush ruleset`, which would wipe Docker's rules.
        assert not server.service("nftables").is_enabled


@pytest.mark.usefixtures("removed_phase")
class TestRemoved:
    def test_nothing_of_the_firewall_is_left(self, server):
        assert "deployer_firewall" not in server.run("nft list tables").stdout
        assert not server.file("/etc/systemd/system/deployer-firewall.service").exists
        assert not server.file("/etc/nftables.d/deployer-firewall.nft").exists

    def test_docker_rules_are_untouched(self, server):
        nat = server.run("nft list table ip nat").stdout
        assert "chain DOCKER" in nat and "dport 5432" in nat and "dnat to" in nat, nat

    def test_without_the_firewall_docker_publishes_to_everyone(self, server, denied):
        assert http_status(denied, 5432) == "200", evidence(server)
