"""roles/tls without a server: the checks of a provided certificate (expired, key of another
certificate) and the subject alternative names of a self-signed one."""
import datetime
import socket

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import validate_role_cases
from test_app import REPO, failed_checks, failure_message, render_role_template, role_templar, trust_as_template

KEY_CHECK = "Check that tls_private_key belongs to tls_certificate"
VALIDITY_CHECK = "Check that the provided certificate is set and still valid"


def certificate(days_valid=30):
    """(certificate PEM, key PEM) of a self-signed certificate valid from now for days_valid
    (negative: it expired that many days ago)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shop.example.com")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=max(0, -days_valid) + 1))
            .not_valid_after(now + datetime.timedelta(days=days_valid))
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


def provided(cert, key):
    return failed_checks("tls", tls_mode="provided", tls_certificate=cert, tls_private_key=key)


def test_a_matching_valid_certificate_passes():
    assert provided(*certificate()) == []


def test_a_key_of_another_certificate_fails():
    cert, _ = certificate()
    _, other_key = certificate()
    assert provided(cert, other_key) == [KEY_CHECK]
    message = failure_message("tls", tls_mode="provided", tls_certificate=cert, tls_private_key=other_key)
    assert "not the private key of tls_certificate" in message
    assert "BEGIN" not in message


def test_an_expired_certificate_fails():
    assert provided(*certificate(days_valid=-1)) == [VALIDITY_CHECK]


def test_missing_pem_fails():
    cert, _ = certificate()
    assert provided(cert, "") == [VALIDITY_CHECK]


def test_provided_mode_ignores_the_domains():
    assert failed_checks("tls", tls_mode="provided", tls_domains=[], tls_certificate=certificate()[0],
                         tls_private_key=certificate()[1]) == [KEY_CHECK]


@pytest.mark.parametrize("domains", [["localhost"], ["shop.example.com", "*.shop.example.com"], ["192.0.2.7"]])
def test_good_domains_pass(domains):
    assert failed_checks("tls", tls_domains=domains) == []


@pytest.mark.parametrize("domains", [[], ["bad name"], ["-bad.example.com"], ["shop.example.com/"]])
def test_bad_domains_fail(domains):
    assert failed_checks("tls", tls_domains=domains) == ["Check the names of the self-signed certificate"]


def test_nothing_is_checked_when_disabled():
    assert failed_checks("tls", tls_enabled=False, tls_mode="provided") == []


def test_subject_alternative_names_tell_addresses_from_names():
    tasks = yaml.safe_load((REPO / "roles/tls/tasks/selfsigned.yml").read_text())
    block = next(task for task in tasks if "block" in task)["block"]
    csr = next(task for task in block if "community.crypto.openssl_csr_pipe" in task)
    expression = csr["community.crypto.openssl_csr_pipe"]["subject_alt_name"]
    templar = role_templar("tls", {"tls_domains": ["shop.example.com", "*.shop.example.com", "192.0.2.7"]})
    assert templar.template(trust_as_template(expression)) == [
        "DNS:shop.example.com", "DNS:*.shop.example.com", "IP:192.0.2.7"]



# -- acme mode ------------------------------------------------------------------------------

ACME = {"tls_mode": "acme", "tls_domains": ["localhost"], "tls_acme_email": "ops@example.com",
        "tls_acme_reload_command": "/opt/shop/nginx/reload", "tls_acme_hosts": ["lb1"]}
ACME_CASES = {
    "valid": ({}, None),
    # This machine's own name resolves here (from /etc/hosts) like localhost.
    "valid_two_names_staging": ({"tls_domains": ["localhost", socket.gethostname()],
                                 "tls_acme_directory": "staging"}, None),
    "valid_private_ca": ({"tls_acme_directory": "https://ca.internal:14000/dir",
                          "tls_acme_ca_bundle": "/etc/ssl/private-ca.pem"}, None),
    "no_email": ({"tls_acme_email": ""}, ["tls_acme_email"]),
    "ip_address": ({"tls_domains": ["192.0.2.7"]}, ["tls_domains", "192.0.2.7"]),
    "wildcard": ({"tls_domains": ["*.example.com"]}, ["tls_domains", "*.example.com", "wildcard"]),
    "bad_name": ({"tls_domains": ["shop_example.com"]}, ["tls_domains", "shop_example.com"]),
    "trailing_dash": ({"tls_domains": ["shop-.example.com"]}, ["tls_domains", "shop-.example.com"]),
    "long_label": ({"tls_domains": ["a" * 64 + ".example.com"]}, ["tls_domains"]),
    "no_names": ({"tls_domains": []}, ["tls_domains"]),
    "plain_http_directory": ({"tls_acme_directory": "http://ca.internal/dir"}, ["tls_acme_directory"]),
    "no_reload": ({"tls_acme_reload_command": ""}, ["tls_acme_reload_command"]),
    "relative_bundle": ({"tls_acme_ca_bundle": "ca.pem"}, ["tls_acme_ca_bundle"]),
    "two_lb_hosts": ({"tls_acme_hosts": ["lb1", "lb2"]}, ["one lb host", "lb2", "provided"]),
    "unresolved": ({"tls_domains": ["localhost", "no-such-host.invalid"]},
                   ["tls_domains", "no-such-host.invalid", "do not resolve"]),
    "unresolved_unchecked": ({"tls_domains": ["no-such-host.invalid"],
                              "tls_acme_resolve_check_enabled": False}, None),
    "selfsigned_ignores_acme": ({"tls_mode": "selfsigned", "tls_acme_email": ""}, None),
}


@pytest.fixture(scope="module")
def acme_validation(tmp_path_factory):
    return validate_role_cases("tls", ACME_CASES, ACME, tmp_path_factory.mktemp("validate"))


@pytest.mark.parametrize("case", ACME_CASES)
def test_acme_validation_names_the_variable_to_fix(acme_validation, case):
    expected = ACME_CASES[case][1]
    if expected is None:
        assert acme_validation[case] is None, acme_validation[case]
    else:
        assert acme_validation[case] is not None, f"{case} passed validation"
        for text in expected:
            assert text in acme_validation[case]


def handler_argv(**inputs):
    handler = yaml.safe_load((REPO / "roles/tls/handlers/main.yml").read_text())[0]
    templar = role_templar("tls", {**ACME, "tls_stack_name": "shop", **inputs})
    return templar.template(trust_as_template(handler["ansible.builtin.command"]["argv"]))


@pytest.mark.parametrize("directory, url", [
    ("production", "https://acme-v02.api.letsencrypt.org/directory"),
    ("staging", "https://acme-staging-v02.api.letsencrypt.org/directory"),
    ("https://ca.internal:14000/dir", "https://ca.internal:14000/dir"),
])
def test_certbot_asks_the_chosen_directory_over_http01_webroot(directory, url):
    argv = handler_argv(tls_acme_directory=directory, tls_domains=["shop.example.com", "www.shop.example.com"])
    assert argv[:2] == ["certbot", "certonly"] and "--non-interactive" in argv
    assert argv[argv.index("--server") + 1] == url
    assert argv[argv.index("--webroot-path") + 1] == "/var/lib/shop/acme-challenge"
    assert argv[argv.index("--domains") + 1] == "shop.example.com,www.shop.example.com"
    assert argv[argv.index("--deploy-hook") + 1] == "/usr/local/sbin/shop-tls-deploy"
    assert argv[argv.index("--email") + 1] == "ops@example.com"


def render(template, **inputs):
    return render_role_template("tls", template, **{**ACME, "tls_stack_name": "shop", **inputs})


def test_the_renewal_unit_trusts_the_private_ca_only_when_given():
    assert "Environment" not in render("acme-renew.service.j2")
    unit = render("acme-renew.service.j2", tls_acme_ca_bundle="/etc/ssl/private-ca.pem")
    assert "Environment=REQUESTS_CA_BUNDLE=/etc/ssl/private-ca.pem" in unit
    assert "ExecStart=/usr/bin/certbot renew --cert-name shop --non-interactive" in unit
    timer = render("acme-renew.timer.j2", tls_acme_renew_schedule="*-*-* 01:30:00")
    assert "OnCalendar=*-*-* 01:30:00" in timer and "Persistent=true" in timer


def test_the_deploy_hook_replaces_the_files_nginx_reads_then_reloads():
    hook = render("acme-deploy-hook.sh.j2").splitlines()
    moves = [line for line in hook if line.startswith("mv -f")]
    assert moves == ['mv -f "$dir/.privkey.pem.new" "$dir/privkey.pem"',
                     'mv -f "$dir/.fullchain.pem.new" "$dir/fullchain.pem"']
    assert 'install -o 101 -g 101 -m 0600 "$live/privkey.pem" "$dir/.privkey.pem.new"' in hook
    assert hook.index("/opt/shop/nginx/reload") > hook.index(moves[-1])
    assert "set -eu" in hook


@pytest.mark.parametrize("held, server, wanted", [
    (None, "", True),
    (["DNS:shop.example.com"], "https://acme-v02.api.letsencrypt.org/directory", False),
    (["DNS:shop.example.com"], "https://acme-staging-v02.api.letsencrypt.org/directory", True),
    (["DNS:old.example.com"], "https://acme-v02.api.letsencrypt.org/directory", True),
])
def test_certbot_is_asked_again_only_for_other_names_or_another_directory(held, server, wanted):
    import base64
    current = {"subject_alt_name": held} if held else {"failed": False, "msg": "no such file"}
    renewal = {"content": base64.b64encode(f"version = 4.0.0\nserver = {server}\n".encode()).decode()}
    templar = role_templar("tls", {**ACME, "tls_domains": ["Shop.example.com"],
                                   "__tls_acme_current": current, "__tls_acme_renewal": renewal})
    assert templar.template(trust_as_template("{{ __tls_acme_wanted }}")) is wanted
