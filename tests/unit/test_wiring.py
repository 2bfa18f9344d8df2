"""The wiring in group_vars/all/wiring.yml, evaluated for real inventories."""
import yaml

from conftest import REPO

MULTI = """
all:
  vars: {stack_name: shop, stack_domains: [shop.example.com], ansible_connection: local}
  children:
    lb: {hosts: {lb1: {stack_private_address: 10.0.0.1}}}
    app: {hosts: {app1: {stack_private_address: 10.0.0.2}, app2: {stack_private_address: 10.0.0.3}}}
    worker: {hosts: {worker1: {stack_private_address: 10.0.0.4}, worker2: {stack_private_address: 10.0.0.6}}}
    db: {hosts: {data1: {stack_private_address: 10.0.0.5}}}
    cache: {hosts: {data1: }}
"""

SINGLE = """
all:
  vars: {stack_name: shop, stack_domains: [shop.example.com], ansible_connection: local,
         stack_private_address: 192.168.1.10}
  children:
    lb: {hosts: {vps: }}
    app: {hosts: {vps: }}
    worker: {hosts: {vps: }}
    db: {hosts: {vps: }}
    cache: {hosts: {vps: }}
"""

NAMES = ["app_database_host", "app_broker_host", "app_beat_enabled", "app_release_enabled",
         "app_web_enabled", "app_worker_enabled", "postgres_listen_address",
         "redis_listen_address", "nginx_upstream_servers", "app_web_listen_address"]


def test_single_server_keeps_everything_on_the_docker_network(ansible_vars):
    vps = ansible_vars(SINGLE, NAMES + ["__stack_app_reached_by_own_nginx"])["vps"]
    assert vps["app_database_host"] == "postgres"
    assert vps["app_broker_host"] == "redis"
    assert vps["postgres_listen_address"].strip() == ""
    assert vps["redis_listen_address"].strip() == ""
    assert vps["app_web_listen_address"].strip() == ""
    assert vps["nginx_upstream_servers"] == ["web-a:8000"]
    assert vps["app_beat_enabled"] is True and vps["app_release_enabled"] is True
    # nginx reaches web-a by name: the firewall rules of the app's port leave local containers out.
    assert vps["__stack_app_reached_by_own_nginx"] is False


def test_several_hosts_talk_over_private_addresses(ansible_vars):
    hosts = ansible_vars(MULTI, NAMES)
    assert hosts["lb1"]["nginx_upstream_servers"] == ["10.0.0.2:8000", "10.0.0.3:8000"]
    assert hosts["app1"]["app_web_listen_address"] == "10.0.0.2"
    for name in ("app1", "app2", "worker1", "worker2"):
        assert hosts[name]["app_database_host"] == "10.0.0.5"
        assert hosts[name]["app_broker_host"] == "10.0.0.5"
    assert hosts["data1"]["postgres_listen_address"].strip() == "10.0.0.5"
    assert hosts["app2"]["app_web_listen_address"].strip() == "10.0.0.3"


def test_exactly_one_beat_and_one_release_host(ansible_vars):
    hosts = ansible_vars(MULTI, NAMES)
    assert [h for h, v in hosts.items() if v["app_beat_enabled"] is True] == ["worker1"]
    assert [h for h, v in hosts.items() if v["app_release_enabled"] is True] == ["app1"]
    assert hosts["worker1"]["app_web_enabled"] is False
    assert hosts["app1"]["app_worker_enabled"] is False


def test_firewall_opens_each_tier_only_to_its_clients(ansible_vars):
    hosts = ansible_vars(MULTI, ["firewall_rules"])
    ports = {name: {r["port"]: r["sources"] for r in v["firewall_rules"]} for name, v in hosts.items()}
    assert ports["lb1"] == {80: ["any"], 443: ["any"]}
    clients = ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.6"]
    assert sorted(ports["data1"][5432]) == clients
    assert sorted(ports["data1"][6379]) == clients
    assert ports["app1"] == {8000: ["10.0.0.1"], 8001: ["10.0.0.1"]}
    assert ports["worker1"] == {}
    # nginx runs on lb1 alone: no app host lets local containers in.
    assert not any(rule.get("local_containers") for v in hosts.values() for rule in v["firewall_rules"])


def test_an_lb_that_is_also_one_of_several_app_hosts_balances_by_address(ansible_vars):
    inventory = MULTI.replace("lb: {hosts: {lb1: {stack_private_address: 10.0.0.1}}}",
                              "lb: {hosts: {app1: }}")
    hosts = ansible_vars(inventory, ["nginx_upstream_servers", "app_web_listen_address", "firewall_rules"])
    assert hosts["app1"]["nginx_upstream_servers"] == ["10.0.0.2:8000", "10.0.0.3:8000"]
    assert hosts["app1"]["app_web_listen_address"] == "10.0.0.2"
    # nginx's container on app1 reaches app1's 10.0.0.2:8000 from its docker network.
    rules = {name: {r["port"]: r for r in v["firewall_rules"]} for name, v in hosts.items()}
    assert rules["app1"][8000]["local_containers"] is True and rules["app1"][8001]["local_containers"] is True
    assert rules["app1"][8000]["sources"] == ["10.0.0.2"]
    assert rules["app2"][8000]["local_containers"] is False and rules["app2"][8000]["sources"] == ["10.0.0.2"]



ACME_NAMES = ["nginx_acme_webroot", "tls_acme_reload_command", "tls_acme_hosts"]


def test_acme_wires_the_challenge_directory_and_the_reload(ansible_vars):
    vps = ansible_vars(SINGLE.replace("stack_private_address: 192.168.1.10}",
                                      "stack_private_address: 192.168.1.10, tls_mode: acme}"), ACME_NAMES)["vps"]
    assert vps["nginx_acme_webroot"].strip() == "/var/lib/shop/acme-challenge"
    assert vps["tls_acme_reload_command"] == "/opt/shop/nginx/reload"
    assert vps["tls_acme_hosts"] == ["vps"]


def test_without_acme_nginx_serves_no_challenge_directory(ansible_vars):
    assert ansible_vars(SINGLE, ACME_NAMES)["vps"]["nginx_acme_webroot"].strip() == ""


def test_acme_sees_every_lb_host(ansible_vars):
    hosts = ansible_vars(MULTI.replace("lb: {hosts: {lb1:", "lb: {hosts: {lb2: , lb1:"), ACME_NAMES)
    assert sorted(hosts["lb1"]["tls_acme_hosts"]) == ["lb1", "lb2"]


def test_the_lb_proxies_to_each_app_hosts_serving_web_slot(ansible_vars):
    # roles/app's web_slots tasks read app_web_slot from each app host; slot b publishes the
    # port after app_web_port.
    inventory = MULTI.replace("app2: {stack_private_address: 10.0.0.3}",
                              "app2: {stack_private_address: 10.0.0.3, app_web_slot: b}")
    assert "app_web_slot: b" in inventory
    hosts = ansible_vars(inventory, ["nginx_upstream_servers", "app_web_switch_upstreams",
                                     "app_web_switch_hosts", "app_web_port_b"])
    assert hosts["lb1"]["nginx_upstream_servers"] == ["10.0.0.2:8000", "10.0.0.3:8001"]
    assert hosts["app1"]["app_web_switch_upstreams"] == ["10.0.0.2:8000", "10.0.0.3:8001"]
    assert hosts["app1"]["app_web_switch_hosts"] == ["lb1"]
    assert int(hosts["app2"]["app_web_port_b"]) == 8001


def test_a_single_server_proxies_to_its_serving_web_slot_by_name(ansible_vars):
    single = SINGLE.replace("app: {hosts: {vps: }}", "app: {hosts: {vps: {app_web_slot: b}}}")
    assert ansible_vars(single, ["nginx_upstream_servers"])["vps"]["nginx_upstream_servers"] == ["web-b:8000"]


def listing_tasks():
    """playbooks/common.yml's listing pre_task as it is: each role the host runs lists its
    packages (the pre_tasks after it install them)."""
    play = yaml.safe_load((REPO / "playbooks/common.yml").read_text())[0]
    listing = [task for task in play["pre_tasks"] if task["name"] == "List the Debian packages of the roles this host runs"]
    assert len(listing) == 1
    return listing


BASELINE = {"openssh-server", "nftables", "docker.io", "docker-cli", "docker-compose", "apparmor",
            "python3-requests"}


def test_the_base_role_gets_the_packages_of_every_role_its_host_runs(ansible_vars):
    hosts = {name: set(v["base_stack_packages"])
             for name, v in ansible_vars(MULTI, ["base_stack_packages"], before=listing_tasks()).items()}
    assert hosts["lb1"] == BASELINE | {"python3-cryptography"}
    # The backup job runs where the data is: PostgreSQL and Redis on data1 (and uploads on the
    # first app host, when there are uploads).
    assert hosts["data1"] == BASELINE | {"cron", "curl"}
    assert hosts["app1"] == hosts["app2"] == hosts["worker1"] == BASELINE


def test_the_first_app_host_gets_cron_for_the_uploads_backup(ansible_vars):
    inventory = MULTI.replace("ansible_connection: local}", "ansible_connection: local, app_media_path: /media}")
    hosts = ansible_vars(inventory, ["base_stack_packages"], before=listing_tasks())
    assert set(hosts["app1"]["base_stack_packages"]) == BASELINE | {"cron", "curl"}
    assert set(hosts["app2"]["base_stack_packages"]) == BASELINE


def test_the_listing_follows_the_roles_settings(ansible_vars):
    inventory = SINGLE.replace("stack_private_address: 192.168.1.10}", (
        "stack_private_address: 192.168.1.10, tls_mode: acme, backup_restic_enabled: true,"
        " docker_install_source: official, firewall_enabled: false}"))
    vps = set(ansible_vars(inventory, ["base_stack_packages"], before=listing_tasks())["vps"]["base_stack_packages"])
    # Docker's own packages come from its repository, which only the docker role adds.
    assert vps == {"openssh-server", "python3-cryptography", "certbot", "cron", "curl", "restic",
                   "openssh-client"}


def test_each_host_ships_the_images_of_the_roles_it_runs(ansible_vars):
    """The preflight checks these; playbooks/common.yml copies them while apt installs Docker,
    one copy per archive holding only the images the host runs."""
    inventory = MULTI.replace("ansible_connection: local}", (
        "ansible_connection: local, postgres_image_source: archive, postgres_image_archive: /i/stack.tar,"
        " redis_image_source: archive, redis_image_archive: /i/stack.tar, app_image_source: archive,"
        " app_image_archive: /i/app.tar, nginx_image_source: archive, nginx_image_archive: /i/stack.tar,"
        " postgres_image: pg:17, redis_image: redis:8, nginx_image: nginx:1.26, app_image: shop/web:2}"))
    hosts = ansible_vars(inventory, ["__stack_image_archives"])
    assert hosts["data1"]["__stack_image_archives"] == {"/i/stack.tar": ["pg:17", "redis:8"]}
    assert hosts["lb1"]["__stack_image_archives"] == {"/i/stack.tar": ["nginx:1.26"]}
    assert hosts["app1"]["__stack_image_archives"] == hosts["worker2"]["__stack_image_archives"] == {
        "/i/app.tar": ["shop/web:2"]}


def test_a_single_server_ships_each_archive_once_with_its_images(ansible_vars):
    single = SINGLE.replace("stack_private_address: 192.168.1.10}", (
        "stack_private_address: 192.168.1.10, redis_image_source: archive, redis_image_archive: /i/stack.tar,"
        " app_image_source: archive, app_image_archive: /i/stack.tar, redis_image: redis:8,"
        " app_image: shop/web:2}"))
    vps = ansible_vars(single, ["__stack_image_archives"])["vps"]
    assert vps["__stack_image_archives"] == {"/i/stack.tar": ["redis:8", "shop/web:2"]}


def test_an_archive_with_an_image_the_inventory_does_not_name_travels_whole(ansible_vars):
    """redis_image is the role's default here, which the wiring cannot read: the archive cannot
    be cut without it, so it is shipped with every image it holds, as before."""
    single = SINGLE.replace("stack_private_address: 192.168.1.10}", (
        "stack_private_address: 192.168.1.10, redis_image_source: archive, redis_image_archive: /i/stack.tar,"
        " app_image_source: archive, app_image_archive: /i/stack.tar, app_image: shop/web:2}"))
    assert ansible_vars(single, ["__stack_image_archives"])["vps"]["__stack_image_archives"] == {"/i/stack.tar": []}


def test_images_from_a_registry_ship_nothing(ansible_vars):
    assert ansible_vars(SINGLE, ["__stack_image_archives"])["vps"]["__stack_image_archives"] == {}
