"""Unit tests of the sample application that need no Docker: configuration, and the Flask
routes that work without PostgreSQL and Redis. The route tests skip when the host's Python
lacks what the web module imports (flask, psycopg, redis); the config tests always run."""
import sys
from pathlib import Path

import pytest

# sample_app/ sits at the repository root, which is not on sys.path when pytest runs from tests/.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sample_app.config import ConfigError, Settings, setting  # noqa: E402

BASE_ENV = {
    "DATABASE_URL": "postgresql://app:pw@db:5432/app",
    "CELERY_BROKER_URL": "redis://:pw@cache:6379/0",
}


def test_setting_reads_the_variable():
    assert setting("DATABASE_URL", BASE_ENV) == BASE_ENV["DATABASE_URL"]


def test_setting_reads_the_file_and_strips_the_trailing_newline(tmp_path):
    secret = tmp_path / "database_url"
    secret.write_text("postgresql://app:p%40ss@db:5432/app\n")
    assert setting("DATABASE_URL", {"DATABASE_URL_FILE": str(secret)}) == "postgresql://app:p%40ss@db:5432/app"


def test_setting_keeps_inner_whitespace_from_the_file(tmp_path):
    secret = tmp_path / "release"
    secret.write_text(" v1 two \r\n")
    assert setting("APP_RELEASE", {"APP_RELEASE_FILE": str(secret)}) == " v1 two "


def test_setting_refuses_both_the_variable_and_the_file(tmp_path):
    secret = tmp_path / "url"
    secret.write_text("x")
    with pytest.raises(ConfigError, match="both DATABASE_URL and DATABASE_URL_FILE"):
        setting("DATABASE_URL", {"DATABASE_URL": "y", "DATABASE_URL_FILE": str(secret)})


def test_setting_names_the_unreadable_file(tmp_path):
    missing = tmp_path / "absent"
    with pytest.raises(ConfigError, match="DATABASE_URL_FILE: cannot read .*absent"):
        setting("DATABASE_URL", {"DATABASE_URL_FILE": str(missing)})


def test_setting_treats_empty_as_unset():
    assert setting("APP_RELEASE", {"APP_RELEASE": ""}, default="dev") == "dev"
    with pytest.raises(ConfigError, match=r"DATABASE_URL \(or DATABASE_URL_FILE\) must be set"):
        setting("DATABASE_URL", {"DATABASE_URL": ""}, required=True)


def test_settings_defaults():
    settings = Settings.from_env(BASE_ENV)
    assert settings.release == "dev"
    assert settings.beat_interval == 10.0
    assert settings.broker_url == BASE_ENV["CELERY_BROKER_URL"]


@pytest.mark.parametrize("missing", ["DATABASE_URL", "CELERY_BROKER_URL"])
def test_settings_require_both_urls(missing):
    env = {key: value for key, value in BASE_ENV.items() if key != missing}
    with pytest.raises(ConfigError, match=missing):
        Settings.from_env(env)


@pytest.mark.parametrize("interval", ["soon", "0", "-5"])
def test_settings_reject_a_bad_beat_interval(interval):
    with pytest.raises(ConfigError, match="BEAT_INTERVAL_SECONDS"):
        Settings.from_env({**BASE_ENV, "BEAT_INTERVAL_SECONDS": interval})


@pytest.fixture
def client():
    pytest.importorskip("flask")
    pytest.importorskip("psycopg")
    pytest.importorskip("redis")
    from sample_app.web import create_app

    # Nothing listens on port 1: both dependencies refuse at once.
    settings = Settings(
        database_url="postgresql://app:pw@127.0.0.1:1/app",
        broker_url="redis://:pw@127.0.0.1:1/0",
        release="r7",
    )
    enqueued = []

    def enqueue(note, seconds):
        enqueued.append((note, seconds))
        return "task-1"

    app = create_app(settings, enqueue=enqueue)
    test_client = app.test_client()
    test_client.enqueued = enqueued
    return test_client


def test_health_answers_without_dependencies(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "release": "r7"}


def test_ready_names_each_failed_dependency(client):
    response = client.get("/ready")
    assert response.status_code == 503
    assert set(response.get_json()["failed"]) == {"postgres", "redis"}


def test_post_tasks_enqueues_the_note(client):
    response = client.post("/tasks?note=xyz")
    assert response.status_code == 202
    assert response.get_json()["task_id"] == "task-1"
    assert client.enqueued == [("xyz", 0)]


def test_post_tasks_passes_how_long_the_task_takes(client):
    assert client.post("/tasks?note=slow&seconds=2.5").status_code == 202
    assert client.enqueued == [("slow", 2.5)]


@pytest.mark.parametrize("seconds", ["abc", "-1", "121"])
def test_post_tasks_refuses_a_bad_duration(client, seconds):
    response = client.post(f"/tasks?note=x&seconds={seconds}")
    assert response.status_code == 400 and "seconds" in response.get_json()["error"]
    assert client.enqueued == []
