"""roles/tls without a server: the checks of a provided certificate (expired, key of another
certificate) and the subject alternative names of a self-signed one."""
import datetime

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from test_app import REPO, failed_checks, role_templar, trust_as_template

KEY_CHECK = "Check that tls_private_key belongs to tls_certificate (edit both in the inventory's vault)"
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

