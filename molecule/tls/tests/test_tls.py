"""What a user of tls_mode acme notices, against Pebble as the CA: a certificate for both
names from the CA, HTTP redirected except the challenge path, HSTS, a renewal by the
renewal unit that nginx serves without a restart, a failed renewal that is visible while the
current certificate keeps serving, and TLS settings at Mozilla's intermediate profile."""
import json
import os
import re
from pathlib import Path

import pytest
import testinfra

testinfra_hosts = ["tls-lb"]

PEBBLE = testinfra.get_host("docker://tls-pebble")
NAMES = ["tls-lb", "www.tls-lb"]
UNIT = "shop-tls-renew.service"
NGINX = "shop-nginx-nginx-1"
FORCE_DROPIN = Path("/run/systemd/system/shop-tls-renew.service.d/force.conf")
# Mozilla's "intermediate" configuration (version 5.7), as the cipher codes testssl reports.
MOZILLA_INTERMEDIATE = {
    "x1301", "x1302", "x1303",                       # TLS 1.3
    "xc02b", "xc02f", "xc02c", "xc030", "xcca9", "xcca8", "x9e", "x9f", "xccaa",  # TLS 1.2
}


def logs(host):
    return (host.run(f"docker logs --tail 30 {NGINX} 2>&1").stdout
            + host.run(f"journalctl -u {UNIT} -n 30 --no-pager").stdout
            + host.run("tail -n 30 /var/log/letsencrypt/letsencrypt.log").stdout)


def served(host, name="tls-lb"):
    """{'serial', 'issuer', 'san', 'verify'} of the certificate nginx serves for name, seen
    from the CA's host and checked against Pebble's issuing root."""
    PEBBLE.run("curl -sf --cacert /etc/pebble/ca.pem https://tls-pebble:15000/roots/0 -o /tmp/root.pem")
    out = PEBBLE.run(
        f"openssl s_client -connect tls-lb:443 -servername {name} -CAfile /tmp/root.pem "
        f"-verify_hostname {name} </dev/null 2>/dev/null > /tmp/handshake && "
        "openssl x509 -in /tmp/handshake -noout -serial -issuer -ext subjectAltName && "
        "grep 'Verify return code' /tmp/handshake")
    assert out.rc == 0, f"{out.stdout}{out.stderr}\n{logs(host)}"
    return {
        "serial": re.search(r"serial=(\w+)", out.stdout).group(1),
        "issuer": re.search(r"issuer=(.*)", out.stdout).group(1),
        "san": sorted(re.findall(r"DNS:([\w.-]+)", out.stdout)),
        "verify": re.search(r"Verify return code: (.*)", out.stdout).group(1),
    }


def nginx_process(host):
    """The nginx master's PID on the host and its container's start time: both stay across a
    reload and change with a restart."""
    return host.check_output(f"docker inspect -f '{{{{.State.Pid}}}} {{{{.State.StartedAt}}}}' {NGINX}")


def renew(host, force):
    """Starts the renewal unit (as the timer does) and returns its result; force adds
    certbot's --force-renewal through a test-only runtime drop-in."""
    if force:
        host.run(f"mkdir -p {FORCE_DROPIN.parent} && printf '%s\\n' '[Service]' 'ExecStart=' "
                 "'ExecStart=/usr/bin/certbot renew --cert-name shop --non-interactive "
                 f"--no-random-sleep-on-renew --force-renewal' > {FORCE_DROPIN}")
    else:
        host.run(f"rm -f {FORCE_DROPIN}")
    host.run("systemctl daemon-reload && systemctl reset-failed " + UNIT)
    return host.run(f"systemctl start {UNIT}")


@pytest.fixture(scope="module", autouse=True)
def testssl():
    """testssl.sh (on the CA's host) takes minutes here, mostly waiting: it runs in the
    background while the other tests run; a reload in between does not change the settings
    it checks. --ssl-native: the openssl client; --nodns min: no reverse lookups."""
    PEBBLE.run("rm -f /tmp/testssl.json; systemctl reset-failed testssl 2>/dev/null")
    started = PEBBLE.run("systemd-run --unit testssl --working-directory /tmp testssl --quiet "
                         "--color 0 --warnings off --nodns min --ssl-native -p -E "
                         "--jsonfile /tmp/testssl.json tls-lb:443")
    assert started.rc == 0, started.stderr


def test_the_ca_issued_the_certificate_nginx_serves_for_both_names(host):
    for name in NAMES:
        cert = served(host, name)
        assert "Pebble" in cert["issuer"], cert
        assert cert["san"] == sorted(NAMES)
        assert cert["verify"] == "0 (ok)", cert
    key = host.file("/etc/shop/tls/privkey.pem")
    assert (key.uid, key.mode) == (101, 0o600)


def test_http_redirects_to_https_but_serves_the_challenge_path(host):
    host.run("mkdir -p /var/lib/shop/acme-challenge/.well-known/acme-challenge && "
             "echo probe-token > /var/lib/shop/acme-challenge/.well-known/acme-challenge/probe")
    out = PEBBLE.check_output("curl -s -o /dev/null -w '%{http_code} %{redirect_url}' http://www.tls-lb/some/page?x=1")
    assert out == "301 https://www.tls-lb/some/page?x=1"
    assert PEBBLE.check_output("curl -s http://tls-lb/.well-known/acme-challenge/probe") == "probe-token"
    missing = PEBBLE.check_output("curl -s -o /dev/null -w '%{http_code}' http://tls-lb/.well-known/acme-challenge/none")
    assert missing == "404"


def test_https_sends_hsts_for_at_least_six_months(host):
    headers = PEBBLE.check_output("curl -s -D - -o /dev/null --cacert /tmp/root.pem https://tls-lb/")
    hsts = re.search(r"(?im)^strict-transport-security: max-age=(\d+)", headers)
    assert hsts and int(hsts.group(1)) >= 15768000, headers


def test_the_renewal_timer_is_scheduled_and_certbots_own_is_off(host):
    timer = host.service("shop-tls-renew.timer")
    assert timer.is_enabled and timer.is_running
    assert host.check_output("systemctl show -p NextElapseUSecRealtime --value shop-tls-renew.timer")
    assert not host.service("certbot.timer").is_enabled


def test_the_renewal_unit_leaves_a_certificate_that_is_not_due(host):
    before = served(host)["serial"]
    result = renew(host, force=False)
    assert result.rc == 0, result.stderr + logs(host)
    assert served(host)["serial"] == before


def test_a_forced_renewal_is_served_after_a_reload_not_a_restart(host):
    before, process = served(host), nginx_process(host)
    result = renew(host, force=True)
    assert result.rc == 0, result.stderr + logs(host)
    after = served(host)
    assert after["serial"] != before["serial"], logs(host)
    assert after["verify"] == "0 (ok)" and after["san"] == sorted(NAMES)
    assert nginx_process(host) == process, "nginx was restarted, not reloaded"
    # The reload script recorded the new certificate: the nginx role will not reload again.
    recorded = host.file("/opt/shop/nginx/certificate.sha256").content_string.strip()
    assert recorded == host.file("/etc/shop/tls/fullchain.pem").sha256sum


def test_a_failed_renewal_is_visible_and_the_certificate_keeps_serving(host):
    before = served(host)["serial"]
    PEBBLE.check_output("systemctl stop pebble")
    try:
        result = renew(host, force=True)
        assert result.rc != 0
        assert host.run(f"systemctl is-failed {UNIT}").stdout.strip() == "failed"
        journal = host.check_output(f"journalctl -u {UNIT} -n 50 --no-pager")
        assert "Failed to renew certificate shop" in journal or "failure" in journal.lower(), journal
        assert served(host)["serial"] == before
    finally:
        PEBBLE.check_output("systemctl start pebble")
        renew(host, force=False)
        host.run(f"rm -f {FORCE_DROPIN} && systemctl daemon-reload")


def test_testssl_finds_only_mozilla_intermediate_protocols_and_ciphers(host, testssl):
    PEBBLE.run("timeout 600 sh -c 'while systemctl is-active -q testssl; do sleep 2; done'")
    report = PEBBLE.file("/tmp/testssl.json")
    assert report.exists, PEBBLE.run("journalctl -u testssl -n 30 --no-pager").stdout
    findings = json.loads(report.content_string)
    by_id = {f["id"]: f["finding"] for f in findings}
    Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/tmp"), "testssl.json").write_text(
        json.dumps(findings, indent=1))
    # With --ssl-native, testssl cannot try SSLv2/3 (Debian's openssl has neither, like the
    # openssl nginx is built with); TLS 1.0 and 1.1 it does try.
    for old in ("SSLv2", "SSLv3"):
        assert by_id[old].startswith(("not offered", "not tested due to lack of local support")), by_id[old]
    for old in ("TLS1", "TLS1_1"):
        assert by_id[old].startswith("not offered"), (old, by_id[old])
    assert by_id["TLS1_2"].startswith("offered") and by_id["TLS1_3"].startswith("offered")
    ciphers = {f["id"].rsplit("_", 1)[1] for f in findings if f["id"].startswith("cipher-tls")}
    assert ciphers and ciphers <= MOZILLA_INTERMEDIATE, ciphers - MOZILLA_INTERMEDIATE
