"""What an operator notices from another machine: the deploy user logs in with its key on the
new port and can use sudo, the old ports are closed, password logins are refused even with
the right password, and weak algorithms are refused. Runs ssh on the `client` host."""
import re

import pytest
from ports import OLD_PORTS, SSH_PORT

testinfra_hosts = ["client"]

SSH = ("ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
       f"-o ConnectTimeout=10 -p {SSH_PORT}")
KEY = "-i /root/.ssh/id_ed25519 -o IdentitiesOnly=yes"
PASSWORDS = {"root": "molecule-root-password", "alice": "molecule-alice-password"}


# Successful logins first: sshd's PerSourcePenalties briefly refuse a source after failures.
def test_deploy_logs_in_with_its_key(host, sshd_log):
    cmd = host.run(f"{SSH} {KEY} deploy@hardened id -un")
    assert cmd.rc == 0 and cmd.stdout.strip() == "deploy", cmd.stderr + sshd_log()


def test_deploy_becomes_root_without_a_password(host, sshd_log):
    cmd = host.run(f"{SSH} {KEY} deploy@hardened sudo -n id -u")
    assert cmd.rc == 0 and cmd.stdout.strip() == "0", cmd.stderr + sshd_log()


@pytest.mark.parametrize("port", OLD_PORTS)
def test_old_port_is_closed(host, port):
    cmd = host.run(f"timeout 5 bash -c '</dev/tcp/hardened/{port}'")
    assert cmd.rc != 0, f"port {port} still accepts connections after the move to {SSH_PORT}"


def test_server_offers_no_password_method(host, sshd_log):
    cmd = host.run(
        f"{SSH} -v -o PubkeyAuthentication=no "
        "-o PreferredAuthentications=password,keyboard-interactive alice@hardened true")
    assert cmd.rc == 255, cmd.stdout + sshd_log()
    methods = re.findall(r"Authentications that can continue: (\S+)", cmd.stderr)
    assert methods == ["publickey"], cmd.stderr + sshd_log()
    assert "Permission denied (publickey)." in cmd.stderr, cmd.stderr + sshd_log()


@pytest.mark.parametrize("user", sorted(PASSWORDS))
def test_password_login_is_refused_with_the_right_password(host, user, sshd_log):
    cmd = host.run(
        f"sshpass -p %s {SSH} -o BatchMode=no -o PubkeyAuthentication=no "
        "-o PreferredAuthentications=password %s@hardened true", PASSWORDS[user], user)
    assert cmd.rc != 0, f"{user} logged in with a password" + sshd_log()
    assert "Permission denied (publickey)." in cmd.stderr, cmd.stderr + sshd_log()


@pytest.mark.parametrize("option, weak, refusal", [
    ("KexAlgorithms", "ecdh-sha2-nistp256", "no matching key exchange method found"),
    ("Ciphers", "aes128-cbc", "no matching cipher found"),
    # With an AEAD cipher no MAC is negotiated at all: force one that uses a MAC.
    ("Ciphers=aes128-ctr -o MACs", "hmac-sha1", "no matching MAC found"),
    ("HostKeyAlgorithms", "ecdsa-sha2-nistp256", "no matching host key type found"),
])
def test_weak_algorithm_is_refused(host, option, weak, refusal, sshd_log):
    cmd = host.run(f"{SSH} {KEY} -o {option}={weak} deploy@hardened true")
    assert cmd.rc == 255 and refusal in cmd.stderr, cmd.stderr + sshd_log()
