"""What a user of a single server notices: the stack answers over HTTPS through nginx, a
request enqueues a Celery task whose row lands in PostgreSQL, and beat ticks."""
import json
import time

import pytest


def https(host, method, path):
    cmd = host.run(
        "curl -sk -o /tmp/body -w '%%{http_code}' -X %s https://localhost%s && cat /tmp/body",
        method, path)
    assert cmd.rc == 0, cmd.stderr
    return int(cmd.stdout[:3]), cmd.stdout[3:]


def logs(host):
    return host.run("cd /opt/shop/app && docker compose logs --tail 50").stdout


def test_health_through_nginx_over_https(host):
    status, body = https(host, "GET", "/health")
    assert status == 200, body
    assert json.loads(body)["status"] == "ok"


def test_http_redirects_to_https(host):
    cmd = host.run("curl -s -o /dev/null -w '%{http_code} %{redirect_url}' http://localhost/health")
    assert cmd.stdout.startswith("301 https://"), cmd.stdout


def test_ready_sees_postgres_and_redis(host):
    status, body = https(host, "GET", "/ready")
    assert status == 200, body + logs(host)


def test_request_task_row_path(host):
    status, body = https(host, "POST", "/tasks?note=molecule")
    assert status == 202, body + logs(host)
    task_id = json.loads(body)["task_id"]
    for _ in range(60):
        status, body = https(host, "GET", f"/tasks/{task_id}")
        if status == 200:
            break
        time.sleep(1)
    assert status == 200, f"the worker never wrote the row for {task_id}:\n" + logs(host)
    assert json.loads(body)["result"]["note"] == "molecule"


def test_beat_ticks(host):
    for _ in range(30):
        status, body = https(host, "GET", "/beat")
        if status == 200 and json.loads(body).get("count", 0) >= 1:
            return
        time.sleep(1)
    pytest.fail("no beat tick recorded:\n" + body + logs(host))


def test_the_configured_server_runs_the_web_service(host):
    marker = host.file("/etc/molecule-expected-app-server")
    expected = marker.content_string.strip() if marker.exists else "gunicorn"
    # The side effect's release moved web to the other slot.
    slot = host.file("/opt/shop/app/web-slot").content_string.strip()
    cmd = host.run("docker inspect -f '{{json .Config.Cmd}}' shop-app-web-%s-1", slot)
    assert expected in cmd.stdout, cmd.stdout + cmd.stderr


def test_the_first_deploy_left_no_image_archive_on_the_server(host):
    # The stack archive (581 MB) was copied while apt ran and loaded in the background, which
    # deletes it once loaded; the images are in Docker.
    staging = host.file("/var/cache/deployer/images")
    assert staging.is_directory
    assert [name for name in staging.listdir() if name.endswith(".tar")] == []
    for image in ("deployer-test/postgres:17", "deployer-test/redis:8", "deployer-test/nginx:1.26",
                  "deployer-sample/app:1"):
        assert host.run(f"docker image inspect {image}").rc == 0, image


def test_the_host_settings_were_written_while_apt_installed_the_packages(host):
    # playbooks/common.yml applies the base role's settings that need no package while apt
    # works; the transaction touches its mark when it ends (roles/base/vars/main.yml). The
    # kernel module list needs kmod, which apt installed: it comes after the mark.
    def mtime(path):
        cmd = host.run("stat -c %%.9Y %s", path)
        assert cmd.rc == 0, cmd.stderr
        return float(cmd.stdout)

    apt_ended = mtime("/run/deployer-apt-transaction.ended")
    for written_meanwhile in ("/etc/sysctl.d/60-deployer.conf",
                              "/etc/systemd/journald.conf.d/50-deployer.conf"):
        assert mtime(written_meanwhile) < apt_ended, written_meanwhile
    assert mtime("/etc/modprobe.d/60-deployer.conf") > apt_ended
