"""The ssh role without Docker: the sshd drop-in rendered from the role's defaults and vars,
how the role reads sshd's ports, and its validate step against edge-case inputs."""
import re
import shlex

import pytest
from test_base import ECDSA, ED25519, RSA, evaluate, render, validate


def settings(text):
    """The drop-in's keywords and values, in order, without comments."""
    return [tuple(line.split(None, 1)) for line in text.splitlines() if line and not line.startswith("#")]


def test_defaults_are_key_only_and_modern():
    text = render("ssh", "sshd_config.conf.j2")
    lines = settings(text)
    keywords = dict(lines)
    assert text.startswith("# Ansible managed\n")
    assert [v for k, v in lines if k == "Port"] == ["22"]
    assert keywords["PasswordAuthentication"] == "no"
    assert keywords["KbdInteractiveAuthentication"] == "no"
    assert keywords["AuthenticationMethods"] == "publickey"
    assert keywords["PermitRootLogin"] == "prohibit-password"
    assert keywords["AllowTcpForwarding"] == keywords["AllowStreamLocalForwarding"] == "no"
    assert keywords["X11Forwarding"] == "no"
    assert [v for k, v in lines if k == "HostKey"] == ["/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/ssh_host_rsa_key"]
    assert keywords["KexAlgorithms"].split(",")[0] == "mlkem768x25519-sha256"
    offered = ",".join(keywords[k] for k in ("KexAlgorithms", "Ciphers", "MACs", "HostKeyAlgorithms",
                                             "PubkeyAcceptedAlgorithms"))
    assert not re.search(r"nistp|sha1|-cbc|umac-64|ssh-rsa(,|$)", offered), offered
    assert all(mac.endswith("-etm@openssh.com") for mac in keywords["MACs"].split(","))


def test_every_keyword_appears_once_but_port_and_hostkey():
    keywords = [k for k, _ in settings(render("ssh", "sshd_config.conf.j2", __ssh_ports=[22, 2222]))]
    repeated = {k for k in keywords if keywords.count(k) > 1}
    assert repeated == {"Port", "HostKey"}


def test_port_change_in_progress_lists_old_and_new_ports():
    lines = settings(render("ssh", "sshd_config.conf.j2", ssh_port=2222, __ssh_ports=[22, 2222]))
    assert [v for k, v in lines if k == "Port"] == ["22", "2222"]


def test_password_login_enabled_drops_the_publickey_only_rule():
    keywords = dict(settings(render("ssh", "sshd_config.conf.j2", ssh_password_authentication_enabled=True)))
    assert keywords["PasswordAuthentication"] == "yes"
    assert "AuthenticationMethods" not in keywords


def test_options():
    keywords = dict(settings(render(
        "ssh", "sshd_config.conf.j2", ssh_permit_root_login="no", ssh_port_forwarding_enabled=True,
        ssh_agent_forwarding_enabled=True, ssh_max_auth_tries=5, ssh_ciphers=["aes256-gcm@openssh.com"])))
    assert keywords["PermitRootLogin"] == "no"
    assert keywords["AllowTcpForwarding"] == keywords["AllowStreamLocalForwarding"] == "yes"
    assert keywords["AllowAgentForwarding"] == "yes"
    assert keywords["MaxAuthTries"] == "5"
    assert keywords["Ciphers"] == "aes256-gcm@openssh.com"


@pytest.mark.parametrize("stdout_lines, ports", [
    (["port 22", "addressfamily any", "permitrootlogin without-password"], [22]),
    (["port 22", "port 2222"], [22, 2222]),
    # In check mode on a fresh host sshd -T fails and prints nothing: sshd will start on 22.
    ([], [22]),
])
def test_current_ports_from_sshd_t(stdout_lines, ports):
    assert evaluate("ssh", "{{ __ssh_current_ports }}", __ssh_config_before={"stdout_lines": stdout_lines}) == ports


def test_validate_command_checks_the_candidate_before_the_whole_configuration():
    command = evaluate("ssh", "{{ __ssh_validate_command }}") % "/tmp/candidate"
    argv = shlex.split(command)
    assert argv[:2] == ["/bin/sh", "-c"]
    assert "printf 'Include /tmp/candidate\\nInclude /etc/ssh/sshd_config\\n'" in argv[2]
    assert argv[2].endswith("| /usr/sbin/sshd -t -f /dev/stdin")


def test_drop_in_sorts_before_cloud_init():
    name = evaluate("ssh", "{{ __ssh_config_file | basename }}")
    assert sorted([name, "50-cloud-init.conf", "20-custom.conf"])[0] == name


def test_validate(tmp_path):
    cases = {
        "no_keys": {},
        "no_keys_passwords_on": {"ssh_password_authentication_enabled": True},
        "keys": {"ssh_authorized_keys": [ED25519, RSA, 'no-pty,from="10.0.0.0/8" ' + ED25519]},
        "ecdsa_key": {"ssh_authorized_keys": [ED25519, ECDSA]},
        "ecdsa_accepted": {"ssh_authorized_keys": [ECDSA],
                           "ssh_pubkey_accepted_algorithms": ["ecdsa-sha2-nistp256"]},
        "rsa_sha1_only": {"ssh_authorized_keys": [RSA], "ssh_pubkey_accepted_algorithms": ["ssh-ed25519"]},
        "not_a_key": {"ssh_authorized_keys": ["hello world"]},
        "port_zero": {"ssh_authorized_keys": [ED25519], "ssh_port": 0},
        "port_too_high": {"ssh_authorized_keys": [ED25519], "ssh_port": 70000},
        "root_yes": {"ssh_authorized_keys": [ED25519], "ssh_permit_root_login": "yes"},
        "no_ciphers": {"ssh_authorized_keys": [ED25519], "ssh_ciphers": []},
    }
    results = validate("ssh", cases, tmp_path)
    for ok in ("no_keys_passwords_on", "keys", "ecdsa_accepted"):
        assert results[ok] == "ok", (ok, results[ok])
    assert "lock everyone out" in results["no_keys"]
    assert "base_deploy_authorized_keys" in results["no_keys"]
    for case in ("ecdsa_key", "rsa_sha1_only", "not_a_key"):
        assert "ssh_pubkey_accepted_algorithms" in results[case], (case, results[case])
    assert "(ecdsa-sha2-nistp256)" in results["ecdsa_key"]
    assert "(unknown)" in results["not_a_key"]
    for case in ("port_zero", "port_too_high"):
        assert "ssh_port must be between 1 and 65535" in results[case], (case, results[case])
    assert "ssh_permit_root_login" in results["root_yes"]
    assert "algorithm lists" in results["no_ciphers"], results["no_ciphers"]
