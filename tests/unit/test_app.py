"""roles/app without Docker: the compose file and env file it renders, the URLs it builds from
passwords that need encoding, the web and Celery commands, and its input checks.

render_role_template and failed_checks are shared with test_nginx.py and test_tls.py."""
import importlib.util
import json
import os
import shlex
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader
from ansible.template import Templar, trust_as_template
from ansible.utils.collection_loader import AnsibleCollectionConfig

REPO = Path(__file__).resolve().parents[2]
# Collection filters (community.crypto) resolve the way they do under ansible-playbook; other
# test modules may have set the loader up already.
if AnsibleCollectionConfig.collection_finder is None:
    init_plugin_loader()

_spec = importlib.util.spec_from_file_location("input_checks", REPO / "plugins" / "action" / "input_checks.py")
input_checks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(input_checks)


def _trusted(value):
    """Role files are templates to Ansible; values a test passes in are plain data."""
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return {key: _trusted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_trusted(item) for item in value]
    return value


# What a role's tasks set before they render its templates.
RUNTIME = {"app": {
    # tasks/release_target.yml: the release; tasks/web_slot.yml: the web slot it goes to.
    "__app_release": {"image": "stack-release:0123456789ab", "id": "sha256:0123456789abcdef",
                      "source": "deployer-sample/app:1"},
    "__app_web_target_slot": "a",
}}


def role_templar(role, inputs):
    """A Templar seeing what a task of the role sees: its defaults and vars, the inputs over
    the defaults, and two CPUs."""
    loader = DataLoader()
    variables = {}
    for part in ("defaults/main.yml", "vars/main.yml"):
        path = REPO / "roles" / role / part
        if path.exists():
            variables.update(_trusted(loader.load_from_file(str(path))))
    variables.update(ansible_managed="Ansible managed", ansible_check_mode=False,
                     ansible_facts={"processor_vcpus": 2}, ansible_search_path=[str(REPO / "roles" / role)])
    variables.update(RUNTIME.get(role, {}))
    variables.update(inputs)
    return Templar(loader=loader, variables=variables)


def render_role_template(role, template, **inputs):
    source = (REPO / "roles" / role / "templates" / template).read_text()
    return role_templar(role, inputs).template(trust_as_template(source))


def failed_checks(role, **inputs):
    """[name] of the first rule in the role's tasks/validate.yml that fails for these inputs, or []."""
    failure = first_failure(role, **inputs)
    return [failure["name"]] if failure else []


def failure_message(role, **inputs):
    """The fail_msg the first failing rule of the role's tasks/validate.yml prints, or None."""
    failure = first_failure(role, **inputs)
    return failure["msg"] if failure else None


def first_failure(role, **inputs):
    """The first broken rule ({"name", "msg"}), checked by the input_checks action plugin's own
    code; an `assert` task counts as one rule. Read-only probes are skipped: a test gives their
    registered results as inputs."""
    templar = role_templar(role, inputs)
    for task in yaml.safe_load((REPO / "roles" / role / "tasks" / "validate.yml").read_text()):
        if "input_checks" in task:
            rules = task["input_checks"]["checks"]
        elif "ansible.builtin.assert" in task:
            rules = [{"name": task["name"], **task["ansible.builtin.assert"],
                      **{key: task[key] for key in ("when", "vars", "loop", "loop_control") if key in task}}]
            rules[0].pop("quiet", None)
        else:
            continue
        failures = input_checks.evaluate(_trusted(rules), templar)
        if failures:
            return failures[0]
    return None


SAMPLE = {
    "app_image": "deployer-sample/app:1",
    "app_module": "sample_app.wsgi:app",
    "app_celery_app": "sample_app.tasks:celery",
    "app_database_host": "postgres",
    "app_database_name": "shop",
    "app_database_user": "shop",
    "app_database_password": "s3cret",
    "app_broker_host": "redis",
    "app_broker_password": "r3dis",
}


def compose(**inputs):
    return yaml.safe_load(render_role_template("app", "compose.yaml.j2", **{**SAMPLE, **inputs}))


def env_file(**inputs):
    """The env file as the containers see it: sourced by /bin/sh."""
    text = render_role_template("app", "app.env.j2", **{**SAMPLE, **inputs})
    names = [line.split("=", 1)[0] for line in text.splitlines() if "=" in line and not line.startswith("#")]
    script = f"set -a\n{text}\nset +a\n" + "".join(f'printf "%s\\0" "${name}"\n' for name in names)
    values = subprocess.run(["sh", "-c", script], capture_output=True, check=True).stdout.split(b"\0")
    return text, dict(zip(names, (value.decode() for value in values)))


@pytest.mark.parametrize("password", [
    "plain", "p@ss:word/with?query#frag", "100% sure & 'quoted' \"twice\"", "$HOME `id` \\n",
    "ünïcødé ☃", " leading and trailing ",
])
def test_urls_carry_any_password_intact(password):
    _, env = env_file(app_database_password=password, app_broker_password=password)
    database = urllib.parse.urlsplit(env["DATABASE_URL"])
    broker = urllib.parse.urlsplit(env["CELERY_BROKER_URL"])
    assert urllib.parse.unquote(database.password) == password
    assert (database.hostname, database.port, database.path) == ("postgres", 5432, "/shop")
    assert urllib.parse.unquote(broker.password) == password
    assert (broker.hostname, broker.port, broker.path) == ("redis", 6379, "/0")


def test_a_broker_without_password_and_wired_hosts_with_spaces():
    _, env = env_file(app_broker_password="", app_database_host=" 10.0.0.5 ", app_broker_db=3)
    assert env["CELERY_BROKER_URL"] == "redis://redis:6379/3"
    assert "@10.0.0.5:5432/" in env["DATABASE_URL"]


def test_secret_env_values_reach_the_environment_verbatim():
    secret = "it's $(not) run; \"ok\"\nsecond line"
    _, env = env_file(app_secret_env={"SECRET_KEY": secret})
    assert env["SECRET_KEY"] == secret


def test_no_urls_without_hosts():
    text, env = env_file(app_database_host="", app_broker_host="", app_secret_env={"A": "1"})
    assert env == {"A": "1"}
    assert text.startswith("# Ansible managed\n")


def test_no_secret_reaches_the_compose_file_but_a_change_recreates_the_containers():
    first = render_role_template("app", "compose.yaml.j2", **SAMPLE, app_secret_env={"SECRET_KEY": "k1"})
    second = compose(app_secret_env={"SECRET_KEY": "k2"})
    for secret in ("s3cret", "r3dis", "k1"):
        assert secret not in first
    assert yaml.safe_load(first)["services"]["web-a"]["labels"] != second["services"]["web-a"]["labels"]


def test_every_service_is_locked_down_and_reads_the_env_file():
    services = compose()["services"]
    assert set(services) == {"web-a", "worker", "beat", "release"}
    for name, service in services.items():
        assert service["user"] == "1000:1000", name
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"], name
        assert service["security_opt"] == ["no-new-privileges:true"], name
        assert service["mem_limit"] and service["pids_limit"] == 512, name
        assert service["secrets"] == ["app_env"], name
        assert service["entrypoint"][:2] == ["/bin/sh", "-c"], name
        assert ". /run/secrets/app_env" in service["entrypoint"][2], name
    assert services["release"]["profiles"] == ["release"] and services["release"]["restart"] == "no"
    assert all("healthcheck" in services[name] for name in ("web-a", "worker", "beat"))


def test_the_entrypoint_runs_the_command_with_the_env_file_loaded(tmp_path):
    env = tmp_path / "app_env"
    env.write_text("GREETING='hello world'\n")
    entrypoint = compose()["services"]["web-a"]["entrypoint"]
    # Compose turns $$ into $; the command's arguments follow the script as "$@".
    script = entrypoint[2].replace("$$", "$").replace("/run/secrets/app_env", str(env))
    out = subprocess.run([entrypoint[0], "-c", script, "app", "sh", "-c", 'echo "$GREETING"'],
                         capture_output=True, text=True, check=True)
    assert out.stdout == "hello world\n"


def test_gunicorn_command_with_workers_from_the_cpu_count():
    command = compose()["services"]["web-a"]["command"]
    assert command[0] == "gunicorn" and command[-1] == "sample_app.wsgi:app"
    options = dict(zip(command[1:-1:2], command[2:-1:2]))
    assert options["--workers"] == "5"  # 2 x 2 CPUs + 1
    assert options["--worker-class"] == "gthread" and options["--threads"] == "2"
    assert options["--bind"] == "0.0.0.0:8000"
    assert options["--graceful-timeout"] == "25"


def test_gunicorn_with_the_uvicorn_worker_class_for_asgi():
    command = compose(app_module="sample_app.asgi:app", app_web_worker_class="uvicorn.workers.UvicornWorker",
                      app_web_workers=3)["services"]["web-a"]["command"]
    assert command[command.index("--worker-class") + 1] == "uvicorn.workers.UvicornWorker"
    assert command[command.index("--workers") + 1] == "3"


def test_uvicorn_command():
    command = compose(app_server="uvicorn", app_module="sample_app.asgi:app",
                      app_web_port=9000, app_web_stop_grace_period=60)["services"]["web-a"]["command"]
    assert command == ["uvicorn", "--host", "0.0.0.0", "--port", "9000", "--workers", "5",
                       "--proxy-headers", "--forwarded-allow-ips", "*",
                       "--timeout-graceful-shutdown", "55", "sample_app.asgi:app"]


def test_a_whole_web_command_replaces_the_built_one_and_dollars_are_escaped():
    command = compose(app_web_command=["sh", "-c", "exec serve --port $PORT"])["services"]["web-a"]["command"]
    assert command == ["sh", "-c", "exec serve --port $$PORT"]


def test_celery_worker_and_beat_commands():
    services = compose(app_worker_concurrency=0, app_worker_queues=["default", "mail"],
                       app_worker_replicas=3)["services"]
    worker = services["worker"]
    assert worker["command"] == ["celery", "-A", "sample_app.tasks:celery", "worker", "--loglevel", "INFO",
                                 "--concurrency", "2", "--queues", "default,mail"]
    assert worker["scale"] == 3
    assert worker["stop_signal"] == "SIGTERM" and worker["stop_grace_period"] == "600s"
    assert 'inspect ping' in worker["healthcheck"]["test"][3]
    assert '"celery@$$HOSTNAME"' in worker["healthcheck"]["test"][3]
    assert "--schedule" in services["beat"]["command"]


def test_the_worker_healthcheck_pings_its_own_node():
    test = compose()["services"]["worker"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "/bin/sh", "-c"]
    words = shlex.split(test[3].replace("$$", "$").split("&& exec ", 1)[1])
    assert words == ["celery", "-A", "sample_app.tasks:celery", "inspect", "ping", "--timeout", "3",
                     "-d", "celery@$HOSTNAME"]


def test_a_host_runs_only_the_services_it_is_given():
    assert set(compose(app_worker_enabled=False, app_beat_enabled=False)["services"]) == {"web-a", "release"}
    assert set(compose(app_web_enabled=False, app_beat_enabled=False)["services"]) == {"worker", "release"}


def test_web_published_only_on_a_listen_address():
    assert "ports" not in compose()["services"]["web-a"]
    assert compose(app_web_listen_address=" 10.0.0.3 ")["services"]["web-a"]["ports"] == ["10.0.0.3:8000:8000"]
    assert compose(app_web_listen_address="fd00::3")["services"]["web-a"]["ports"] == ["[fd00::3]:8000:8000"]


def test_plain_env_goes_to_the_compose_file_with_dollars_escaped():
    environment = compose(app_env={"PRICE": "5$", "DEBUG": False, "N": 3})["services"]["web-a"]["environment"]
    assert environment == {"PRICE": "5$$", "DEBUG": "False", "N": "3"}


def test_media_volume_is_named_after_the_stack():
    rendered = compose(app_media_path="/app/media")
    assert rendered["services"]["web-a"]["volumes"] == ["stack-app-media:/app/media"]
    assert rendered["volumes"] == {"stack-app-media": {"name": "stack-app-media"}}


def test_the_sample_inputs_pass_validation():
    assert failed_checks("app", **SAMPLE) == []


@pytest.mark.parametrize("inputs, check", [
    ({"app_image": ""}, "Check the stack name and the image"),
    ({"app_module": "no-colon"}, "Check what the web service runs"),
    ({"app_celery_app": ""}, "Check what the Celery services run"),
    ({"app_worker_queues": ["a,b"]}, "Check what the Celery services run"),
    ({"app_database_name": ""}, "Check the database and broker settings"),
    ({"app_env": {"1BAD": "x"}}, "Check the environment variable names"),
    ({"app_env": {"A": "1"}, "app_secret_env": {"A": "2"}}, "Check the environment variable names"),
    ({"app_secret_env": {"DATABASE_URL": "postgresql://x"}}, "Check the environment variable names"),
    ({"app_release_command": ["python3", 3]}, "Check the release, static and media settings"),
    ({"app_static_path": "relative/static"}, "Check the release, static and media settings"),
])
def test_bad_inputs_fail_the_right_check(inputs, check):
    assert failed_checks("app", **{**SAMPLE, **inputs}) == [check]


def test_own_urls_are_allowed_when_the_hosts_are_left_empty():
    inputs = {**SAMPLE, "app_database_host": "", "app_secret_env": {"DATABASE_URL": "postgresql://managed"}}
    assert failed_checks("app", **inputs) == []


def test_the_order_of_the_secrets_does_not_recreate_the_containers():
    first = compose(app_secret_env={"A": "1", "B": "2"})["services"]["web-a"]["labels"]
    assert compose(app_secret_env={"B": "2", "A": "1"})["services"]["web-a"]["labels"] == first


ROLLOUT_CASES = {
    # app hosts' app_web_serving (None: not read), extra vars -> the batches of the roll play
    "first deploy: every host at once": ({"app1": False, "app2": False}, {}, [["app1", "app2", "work1"]]),
    "one host serves: one at a time": ({"app1": True, "app2": False}, {}, [["app1"], ["app2"], ["work1"]]),
    "a host not read counts as serving": ({"app1": False, "app2": None}, {}, [["app1"], ["app2"], ["work1"]]),
    "batches of rollout_batch_size": ({"app1": True, "app2": True}, {"rollout_batch_size": 2},
                                      [["app1", "app2"], ["work1"]]),
}


@pytest.mark.parametrize("case", ROLLOUT_CASES)
def test_the_rollout_takes_every_host_at_once_only_when_none_serves(case, tmp_path):
    """playbooks/app.yml's roll play, its serial and vars as they are, after a play that sets
    app_web_serving the way tasks/web_slots.yml does."""
    serving, extra, batches = ROLLOUT_CASES[case]
    roll = next(play for play in yaml.safe_load((REPO / "playbooks/app.yml").read_text())
                if "serial" in play)
    hosts = {name: {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
             for name in ["app1", "app2", "work1"]}
    inventory = {"all": {"hosts": hosts, "children": {
        "app": {"hosts": {"app1": None, "app2": None}}, "worker": {"hosts": {"work1": None}}}}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    playbook = [
        {"hosts": "app", "gather_facts": False, "tasks": [
            {"ansible.builtin.set_fact": {"app_web_serving": value}, "when": f"inventory_hostname == '{host}'"}
            for host, value in serving.items() if value is not None]},
        {"hosts": roll["hosts"], "gather_facts": False, "serial": roll["serial"], "vars": roll["vars"],
         "tasks": [{"ansible.builtin.copy": {
             "dest": f"{tmp_path}/batch-{{{{ ansible_play_batch | first }}}}.json",
             "content": "{{ ansible_play_batch | to_json }}"}, "delegate_to": "localhost", "run_once": True}]},
    ]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(playbook))
    result = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"),
         str(tmp_path / "play.yml"), "-e", json.dumps(extra)],
        cwd=REPO, env=dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg")),
        capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    ran = sorted(json.loads(path.read_text()) for path in tmp_path.glob("batch-*.json"))
    assert ran == sorted(batches)
