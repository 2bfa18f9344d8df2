"""What an administrator notices on the hardened host: sshd runs with the hardened settings,
the deploy user and its sudo rule, security-only unattended upgrades, the capped journal, the
timezone, the kernel settings written (and forwarding never turned off), nothing host-global
done inside the container, and lynis's hardening index."""
import re

from ports import SSH_PORT

testinfra_hosts = ["hardened"]

LYNIS_MIN_HARDENING_INDEX = 65


def effective_sshd(host):
    cmd = host.run("sshd -T")
    assert cmd.rc == 0, cmd.stderr
    return cmd.stdout.splitlines()


def test_sshd_runs_with_the_hardened_settings(host, sshd_log):
    lines = effective_sshd(host)
    for expected in ("passwordauthentication no", "kbdinteractiveauthentication no",
                     "permitrootlogin without-password", "authenticationmethods publickey",
                     "x11forwarding no", "allowtcpforwarding no", "allowagentforwarding no",
                     "maxauthtries 3", "loglevel VERBOSE"):
        assert expected in lines, f"sshd -T lacks '{expected}'" + sshd_log()
    assert [line for line in lines if line.startswith("port ")] == [f"port {SSH_PORT}"]
    offered = {line.split()[0]: line.split()[1].split(",") for line in lines
               if line.split()[0] in ("kexalgorithms", "ciphers", "macs", "hostkeyalgorithms")}
    weak = ([a for a in offered["kexalgorithms"] if "nistp" in a or "sha1" in a]
            + [c for c in offered["ciphers"] if c.endswith("-cbc")]
            + [m for m in offered["macs"] if not m.endswith("-etm@openssh.com")]
            + [k for k in offered["hostkeyalgorithms"] if "nistp" in k or k.startswith("ssh-rsa")])
    assert not weak, f"sshd still offers {weak}"


def test_sshd_has_reloaded_onto_the_new_port(host, sshd_log):
    listening = host.run(f"ss -Htlnp 'sport = :{SSH_PORT}'").stdout
    assert "sshd" in listening, listening + sshd_log()


def test_sshd_drop_in_is_read_first_and_private(host):
    drop_ins = host.run("ls /etc/ssh/sshd_config.d").stdout.split()
    assert drop_ins[0] == "10-deployer.conf", drop_ins
    config = host.file("/etc/ssh/sshd_config.d/10-deployer.conf")
    assert (config.user, config.group, config.mode) == ("root", "root", 0o600)


def test_deploy_user(host):
    deploy = host.user("deploy")
    assert deploy.shell == "/bin/bash"
    assert "docker" in deploy.groups
    # Locked or no password: the account logs in with its key only.
    assert deploy.password[:1] in ("!", "*"), "the deploy user has a usable password"
    keys = host.file("/home/deploy/.ssh/authorized_keys")
    assert (keys.user, keys.mode) == ("deploy", 0o600)
    lines = keys.content_string.splitlines()
    assert len(lines) == 1 and lines[0].endswith("molecule-hardening"), lines


def test_deploy_user_has_passwordless_sudo(host):
    rule = host.file("/etc/sudoers.d/50-deployer")
    assert (rule.user, rule.mode) == ("root", 0o440)
    assert host.run("visudo -c").rc == 0
    privileges = host.run("sudo -l -U deploy").stdout
    assert "(ALL : ALL) NOPASSWD: ALL" in privileges, privileges


def test_unattended_upgrades_take_security_updates_only(host):
    periodic = host.run("apt-config dump APT::Periodic").stdout
    assert 'APT::Periodic::Unattended-Upgrade "1";' in periodic, periodic
    assert host.run("apt-config dump Unattended-Upgrade::Automatic-Reboot").stdout.startswith(
        'Unattended-Upgrade::Automatic-Reboot "false";')
    dry_run = host.run("unattended-upgrade --dry-run --debug")
    allowed = re.search(r"Allowed origins are: (.*)", dry_run.stdout + dry_run.stderr)
    assert allowed, dry_run.stdout + dry_run.stderr
    origins = allowed.group(1).split(", ")
    assert origins and all(o.endswith("label=Debian-Security") for o in origins), origins


def test_journal_is_capped(host):
    journald = host.run("journalctl -u systemd-journald --no-pager -o cat").stdout
    reports = re.findall(r"System Journal \(.*\) is .*, max ([0-9.]+[KMGT]?)", journald)
    assert reports and reports[-1] in ("500M", "500.0M"), journald[-2000:]


def test_timezone(host):
    assert host.run("timedatectl show --property=Timezone --value").stdout.strip() == "Europe/Berlin"
    assert host.run("date +%Z").stdout.strip() in ("CET", "CEST")


def test_kernel_settings_are_written(host):
    settings = host.file("/etc/sysctl.d/60-deployer.conf").content_string
    for line in ("kernel.kptr_restrict = 2", "net.ipv4.conf.all.send_redirects = 0",
                 "vm.overcommit_memory = 1", "net.core.somaxconn = 8192"):
        assert line in settings.splitlines(), settings


def test_no_sysctl_file_turns_ip_forwarding_off(host):
    # Every sysctl.d file in the order systemd applies them at boot.
    config = host.run("systemd-analyze cat-config sysctl.d").stdout
    assert "60-deployer.conf" in config, config
    off = re.findall(
        r"^\s*-?net\.ipv[46]\.(?:ip_forward|conf\.(?:all|default)\.forwarding)\s*=\s*0\s*$",
        config, re.MULTILINE)
    assert not off, off


def test_kernel_modules_are_blocked(host):
    blocked = host.file("/etc/modprobe.d/60-deployer.conf").content_string
    for module in ("dccp", "sctp", "rds", "tipc", "usb-storage", "firewire-core"):
        assert f"install {module} /bin/false" in blocked.splitlines(), blocked


def test_container_gets_no_host_global_changes(host):
    # base_swap_size is set, but a swap file would be swap of the machine running the container.
    assert not host.file("/swapfile").exists
    assert "swapfile" not in host.file("/etc/fstab").content_string
    assert not host.service("systemd-timesyncd").is_running


def test_lynis_hardening_index(host):
    report = host.file("/var/log/lynis-report.dat").content_string
    index = int(re.search(r"^hardening_index=(\d+)$", report, re.MULTILINE).group(1))
    findings = "\n".join(re.findall(r"^(?:warning|suggestion)\[\]=(.*)$", report, re.MULTILINE))
    print(f"lynis hardening index: {index}\n{findings}")
    assert index >= LYNIS_MIN_HARDENING_INDEX, f"hardening index {index}:\n{findings}"
