"""The firewall role without Docker: its filters, the nftables and systemd files it renders
(IPv4 and IPv6, edge cases), and the guard against locking out the SSH session applying it."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import jinja2
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "firewall"
VENV_BIN = Path(sys.executable).parent

_spec = importlib.util.spec_from_file_location("firewall_filters", ROLE / "filter_plugins" / "firewall.py")
filters = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(filters)

# The settings of Ansible's template module.
ENV = jinja2.Environment(trim_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
ENV.filters.update(filters.FilterModule().filters())


def role_vars(**inputs):
    """defaults/main.yml, then the inputs, then vars/main.yml evaluated like Ansible does."""
    context = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    context.update(inputs, ansible_managed="Ansible managed")
    for name, value in yaml.safe_load((ROLE / "vars" / "main.yml").read_text()).items():
        if isinstance(value, str) and value.strip().startswith("{{"):
            value = ENV.compile_expression(value.strip()[2:-2])(**context)
        context[name] = value
    return context


def render(template, **inputs):
    source = (ROLE / "templates" / template).read_text()
    return ENV.from_string(source).render(role_vars(**inputs))


def statements(text):
    """Lines that are not comments."""
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def chain(text, name):
    """The lines of one chain of the rendered table, comments included."""
    body = text.split(f"\tchain {name} {{\n", 1)[1].split("\n\t}\n", 1)[0]
    return [line.strip() for line in body.splitlines() if line.strip()]


def accepts(text):
    return statements("\n".join(chain(text, "allowed")))


# -- the rules file -------------------------------------------------------------------------

def test_defaults_open_nothing_but_ssh():
    assert accepts(render("deployer-firewall.nft.j2")) == [
        'meta l4proto tcp ct original proto-dst 22 accept comment "ssh"']


def test_file_replaces_only_its_own_table():
    lines = statements(render("deployer-firewall.nft.j2"))
    assert not [line for line in lines if "flush" in line]
    assert [line for line in lines if "table " in line] == [
        "table inet deployer_firewall {}",
        "delete table inet deployer_firewall",
        "table inet deployer_firewall {",
    ]
    assert lines[0] == "table inet deployer_firewall {}"


def test_input_drops_by_default_after_accepting_open_connections():
    rules = statements("\n".join(chain(render("deployer-firewall.nft.j2"), "input")))
    assert rules[0] == "type filter hook input priority filter; policy drop;"
    assert rules[1] == "ct state established,related accept"
    assert "iif lo accept" in rules
    assert any("nd-neighbor-solicit" in r and "nd-neighbor-advert" in r for r in rules)
    assert rules[-1] == "ct state new jump allowed"


def test_forward_holds_published_ports_to_the_same_rules_and_nothing_else():
    assert statements("\n".join(chain(render("deployer-firewall.nft.j2"), "forward"))) == [
        "type filter hook forward priority filter - 10; policy accept;",
        "ct state new ct status dnat jump allowed",
        "ct state new ct status dnat drop",
    ]


def test_sources_are_split_by_family_merged_and_sorted():
    text = render("deployer-firewall.nft.j2", firewall_rules=[{
        "port": 5432,
        "sources": ["10.0.1.7", "10.0.0.0/24", "10.0.0.9/32", "2001:db8:0:0::1", "fd00::/8",
                    "fd12::/16", "192.0.2.5/24"],
    }])
    assert accepts(text)[1:] == [
        "ip saddr { 10.0.0.0/24, 10.0.1.7, 192.0.2.0/24 } meta l4proto tcp ct original proto-dst 5432 accept",
        "ip6 saddr { 2001:db8::1, fd00::/8 } meta l4proto tcp ct original proto-dst 5432 accept",
    ]


def test_ipv6_only_sources_render_no_ipv4_rule():
    text = render("deployer-firewall.nft.j2", firewall_rules=[
        {"port": 8000, "sources": ["2001:db8::10"], "comment": "app from lb"}])
    assert accepts(text)[1:] == [
        'ip6 saddr { 2001:db8::10 } meta l4proto tcp ct original proto-dst 8000 accept comment "app from lb"']


def test_any_opens_to_everyone_whatever_else_is_listed():
    text = render("deployer-firewall.nft.j2", firewall_rules=[
        {"port": 443, "sources": ["10.0.0.1", "any"]},
        {"port": 443, "proto": "udp", "sources": ["any"]},
    ])
    assert accepts(text)[1:] == [
        "meta l4proto tcp ct original proto-dst 443 accept",
        "meta l4proto udp ct original proto-dst 443 accept",
    ]


def test_empty_sources_open_to_nobody():
    text = render("deployer-firewall.nft.j2", firewall_rules=[
        {"port": 6379, "sources": [], "comment": "redis"}])
    assert accepts(text)[1:] == []
    assert "# tcp/6379 (redis): no sources, open to nobody" in chain(text, "allowed")


def test_local_containers_open_the_port_to_the_docker_bridges_too():
    text = render("deployer-firewall.nft.j2", firewall_rules=[
        {"port": 8000, "sources": ["10.0.0.1"], "comment": "app web-a", "local_containers": True},
        {"port": 8001, "sources": [], "local_containers": True},
        {"port": 443, "sources": ["any"], "local_containers": True},
        {"port": 8002, "sources": ["10.0.0.1"], "local_containers": False},
    ])
    assert accepts(text)[1:] == [
        'ip saddr { 10.0.0.1 } meta l4proto tcp ct original proto-dst 8000 accept comment "app web-a"',
        'iifname { "docker0", "br-*" } meta l4proto tcp ct original proto-dst 8000 accept comment "app web-a"',
        'iifname { "docker0", "br-*" } meta l4proto tcp ct original proto-dst 8001 accept',
        "meta l4proto tcp ct original proto-dst 443 accept",
        "ip saddr { 10.0.0.1 } meta l4proto tcp ct original proto-dst 8002 accept",
    ]


def test_ssh_port_and_sources_are_configurable():
    text = render("deployer-firewall.nft.j2", firewall_ssh_port=2222,
                  firewall_ssh_sources=["198.51.100.0/24", "2001:db8:ff::/48"])
    assert accepts(text) == [
        'ip saddr { 198.51.100.0/24 } meta l4proto tcp ct original proto-dst 2222 accept comment "ssh"',
        'ip6 saddr { 2001:db8:ff::/48 } meta l4proto tcp ct original proto-dst 2222 accept comment "ssh"',
    ]


def test_comments_cannot_break_out_of_their_quotes():
    text = render("deployer-firewall.nft.j2", firewall_rules=[
        {"port": 80, "sources": ["any"], "comment": 'web "front"\n; drop \\' + "x" * 200}])
    line = accepts(text)[1]
    comment = line.split(' comment "', 1)[1]
    assert comment.endswith('"') and '"' not in comment[:-1] and "\\" not in comment
    assert len(comment) - 1 == 128


def test_rendering_is_stable():
    rules = [{"port": 5432, "sources": ["fd00::1", "10.0.0.2", "10.0.0.1"]}]
    assert render("deployer-firewall.nft.j2", firewall_rules=rules) == render(
        "deployer-firewall.nft.j2", firewall_rules=list(reversed(rules)))


# -- the unit -------------------------------------------------------------------------------

def test_unit_loads_the_file_before_the_network_and_docker():
    unit = render("deployer-firewall.service.j2")
    assert "ExecStart=/usr/sbin/nft -f /etc/nftables.d/deployer-firewall.nft" in unit
    assert "ExecReload=/usr/sbin/nft -f /etc/nftables.d/deployer-firewall.nft" in unit
    assert "Before=network-pre.target docker.service shutdown.target" in unit
    assert "After=nftables.service" in unit
    assert "WantedBy=sysinit.target" in unit
    assert not [line for line in statements(unit) if "flush" in line]


# -- the filters ----------------------------------------------------------------------------

@pytest.mark.parametrize("rule, problem", [
    ({"port": 0, "sources": ["any"]}, "firewall_rules[0].port is 0"),
    ({"port": 65536, "sources": ["any"]}, "firewall_rules[0].port is 65536"),
    ({"port": True, "sources": ["any"]}, "firewall_rules[0].port is True"),
    ({"port": "http", "sources": ["any"]}, "firewall_rules[0].port is 'http'"),
    ({"port": 80, "sources": ["db.example.com"]}, "has 'db.example.com'"),
    ({"port": 80, "sources": ["10.0.0.300"]}, "has '10.0.0.300'"),
    ({"port": 80, "sources": ["10.0.0.0/33"]}, "has '10.0.0.0/33'"),
    ({"port": 80, "sources": ["everyone"]}, "has 'everyone'"),
])
def test_rule_errors_name_the_rule_and_the_problem(rule, problem):
    errors = filters.firewall_rule_errors([{"port": 22, "sources": ["any"]}, rule])
    assert len(errors) == 1 and problem.replace("[0]", "[1]") in errors[0], errors


def test_good_rules_have_no_errors():
    assert filters.firewall_rule_errors([
        {"port": "8000", "sources": ["10.0.0.5", "10.0.0.0/8", "fe80::1", "::/0", "any"]},
        {"port": 65535, "sources": []},
    ]) == []


@pytest.mark.parametrize("address, port, allowed", [
    ("10.1.2.3", 22, True),
    ("10.1.2.3", "22", True),
    ("192.0.2.10", 22, False),
    ("2001:db8::7", 22, True),
    ("2001:db9::7", 22, False),
    ("::ffff:10.1.2.3", 22, True),
    ("192.0.2.10", 443, True),
    ("192.0.2.10", 5432, False),
])
def test_allows_matches_address_family_network_and_port(address, port, allowed):
    rules = [
        {"port": 22, "sources": ["10.0.0.0/8", "2001:db8::/32"]},
        {"port": 443, "sources": ["any"]},
        {"port": 5432, "sources": []},
        {"port": 22, "proto": "udp", "sources": ["any"]},
    ]
    assert filters.firewall_allows(rules, address, port) is allowed


# -- the lockout guard, through Ansible -----------------------------------------------------

def run_validate(tmp_path, ssh_client, **inputs):
    playbook = tmp_path / "validate.yml"
    playbook.write_text(yaml.safe_dump([{
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [{"ansible.builtin.include_role": {"name": "firewall", "tasks_from": "validate"},
                   "vars": inputs}],
    }]))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_ROLES_PATH=str(REPO / "roles"),
               ANSIBLE_PYTHON_INTERPRETER=sys.executable, SSH_CLIENT=ssh_client)
    return subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook)],
        cwd=tmp_path, env=env, capture_output=True, text=True)


def test_validate_refuses_rules_that_would_lock_out_this_ssh_session(tmp_path):
    result = run_validate(tmp_path, "203.0.113.9 50514 22", firewall_ssh_sources=["10.0.0.0/8"])
    assert result.returncode != 0, result.stdout
    assert "from 203.0.113.9 to port 22" in result.stdout, result.stdout
    assert "firewall_ssh_sources" in result.stdout, result.stdout


def test_validate_passes_when_this_ssh_session_stays_allowed(tmp_path):
    result = run_validate(tmp_path, "203.0.113.9 50514 22", firewall_ssh_sources=["203.0.113.0/24"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_validate_refuses_bad_sources_before_anything_changes(tmp_path):
    result = run_validate(tmp_path, "", firewall_rules=[{"port": 5432, "sources": ["db-host"]}])
    assert result.returncode != 0, result.stdout
    assert "firewall_rules[0].sources has 'db-host'" in result.stdout, result.stdout


def test_validate_refuses_misspelt_rule_keys(tmp_path):
    result = run_validate(tmp_path, "", firewall_rules=[{"port": 5432, "source": ["any"]}])
    assert result.returncode != 0, result.stdout
    assert "firewall_rules.source. Supported parameters include" in result.stdout, result.stdout
