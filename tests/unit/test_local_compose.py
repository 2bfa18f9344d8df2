"""The local development stack in compose/: the committed files are what the role templates
render with inventories/local today, and together they make one valid Compose project that
a laptop can run (official images unless overridden, nginx on the loopback only, the
checkout's code mounted with auto-reload, no password in any environment)."""
import difflib
import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "compose"
# A machine without the Compose plugin (like this project's CI host) can run Compose from
# the test-host image that tests/images/build.sh builds; `config` needs no daemon.
COMPOSE_IMAGE = "deployer-test/host-docker:trixie"
OVERRIDE_VARIABLES = ["POSTGRES_IMAGE", "REDIS_IMAGE", "NGINX_IMAGE", "APP_IMAGE", "APP_SOURCE",
                   "APP_SOURCE_TARGET"]


@pytest.fixture(scope="module")
def fresh_render(tmp_path_factory):
    out = tmp_path_factory.mktemp("render")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run([str(REPO / "scripts" / "render-local-compose"), str(out)],
                            cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def files_under(root):
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


def test_the_committed_files_are_a_fresh_render(fresh_render):
    rendered_dirs = sorted(path.name for path in fresh_render.iterdir())
    assert rendered_dirs == ["app", "nginx", "postgres", "redis"]
    problems = []
    for name in rendered_dirs:
        fresh, committed = files_under(fresh_render / name), files_under(COMPOSE / name)
        for extra in sorted(set(committed) - set(fresh)):
            problems.append(f"compose/{name}/{extra} is no longer rendered")
        for path in fresh:
            new = (fresh_render / name / path).read_text()
            old_path = COMPOSE / name / path
            old = old_path.read_text() if old_path.exists() else ""
            if new != old:
                problems.extend(difflib.unified_diff(
                    old.splitlines(), new.splitlines(), f"committed compose/{name}/{path}",
                    f"fresh render of compose/{name}/{path}", lineterm=""))
    assert not problems, (
        "compose/ differs from what the role templates render now. Run "
        "scripts/render-local-compose and commit compose/ with your change.\n" + "\n".join(problems))


def test_the_top_level_file_includes_every_rendered_project(fresh_render):
    top = yaml.safe_load((COMPOSE / "compose.yaml").read_text())
    included = sorted(entry["path"][0] for entry in top["include"])
    assert included == sorted(f"{path.name}/compose.yaml" for path in fresh_render.iterdir())


def compose_config(**variables):
    """`docker compose config` of compose/compose.yaml as data, with only these variables set."""
    return json.loads(_compose_config(tuple(sorted(variables.items()))))


@functools.cache
def _compose_config(variables):
    variables = dict(variables)
    argv = ["compose", "-f", str(COMPOSE / "compose.yaml"), "--env-file", os.devnull,
            "config", "--format", "json"]
    env = {name: value for name, value in os.environ.items() if name not in OVERRIDE_VARIABLES}
    env.update(variables)
    if shutil.which("docker") is None:
        pytest.skip("the docker CLI is not installed")
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        command = ["docker", *argv]
    elif subprocess.run(["docker", "image", "inspect", COMPOSE_IMAGE], capture_output=True).returncode == 0:
        command = ["docker", "run", "--rm", "--network", "none", "-v", f"{REPO}:{REPO}:ro", "-w", str(REPO),
                   *[f"--env={name}={value}" for name, value in variables.items()], COMPOSE_IMAGE,
                   "docker", *argv]
    else:
        pytest.skip(f"no `docker compose` here and no {COMPOSE_IMAGE} image to run it from")
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"docker compose config failed:\n{result.stderr}"
    return result.stdout


def test_the_stack_is_one_valid_project_of_the_official_images():
    project = compose_config()
    assert project["name"] == "deployer-dev"
    assert {name: service["image"] for name, service in project["services"].items()} == {
        "postgres": "postgres:17", "redis": "redis:8", "nginx": "nginx:1.26",
        "web-a": "deployer-sample/app:1", "worker": "deployer-sample/app:1",
        "beat": "deployer-sample/app:1", "release": "deployer-sample/app:1"}
    # Compose creates the network the roles expect to exist on a server.
    assert project["networks"]["default"].get("external", False) is False


def test_environment_variables_choose_other_images():
    images = {name: service["image"] for name, service in compose_config(
        POSTGRES_IMAGE="deployer-test/postgres:17", REDIS_IMAGE="deployer-test/redis:8",
        NGINX_IMAGE="deployer-test/nginx:1.26", APP_IMAGE="shop:dev")["services"].items()}
    assert (images["postgres"], images["redis"], images["nginx"], images["web-a"], images["worker"]) == (
        "deployer-test/postgres:17", "deployer-test/redis:8", "deployer-test/nginx:1.26", "shop:dev", "shop:dev")


def test_only_nginx_is_published_and_only_on_the_loopback():
    services = compose_config()["services"]
    published = {name: service["ports"] for name, service in services.items() if service.get("ports")}
    assert list(published) == ["nginx"]
    assert [(port["host_ip"], str(port["published"]), port["target"]) for port in published["nginx"]] == [
        ("127.0.0.1", "8000", 8080)]


def test_the_app_runs_the_checkout_code_with_auto_reload_after_the_release_command():
    services = compose_config()["services"]
    for name in ("web-a", "worker", "beat", "release"):
        mounts = [(mount["source"], mount["target"], mount.get("read_only")) for mount in services[name]["volumes"]]
        assert (str(REPO / "sample_app"), "/app/sample_app", True) in mounts, name
    assert services["web-a"]["environment"]["GUNICORN_CMD_ARGS"] == "--reload"
    assert services["release"]["command"] == ["python3", "-m", "sample_app.migrate"]
    assert "profiles" not in services["release"]
    for name in ("web-a", "worker", "beat"):
        assert services[name]["depends_on"]["release"]["condition"] == "service_completed_successfully"
    assert services["release"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    other = compose_config(APP_SOURCE="/src/shop/shop", APP_SOURCE_TARGET="/app/shop")["services"]["web-a"]
    assert ("/src/shop/shop", "/app/shop") in [(mount["source"], mount["target"]) for mount in other["volumes"]]


def test_no_password_is_in_an_environment_or_a_command():
    services = compose_config()["services"]
    for name, service in services.items():
        visible = json.dumps([service.get("environment"), service.get("command"), service.get("entrypoint"),
                              service.get("healthcheck"), service.get("labels")])
        assert "dev-only-not-secret" not in visible, name
    assert (COMPOSE / "postgres" / "secrets" / "postgres_password").read_text() == "dev-only-not-secret"
