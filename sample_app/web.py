"""The Flask application. `enqueue` is passed in so that the web module needs no Celery."""
import logging

import redis
from flask import Flask, jsonify, request

from sample_app import db

log = logging.getLogger(__name__)
# The longest task a request may ask for (POST /tasks?seconds=N).
MAX_TASK_SECONDS = 120


def create_app(settings, enqueue):
    app = Flask(__name__)

    @app.get("/health")
    def health():
        return jsonify(status="ok", release=settings.release)

    @app.get("/ready")
    def ready():
        checks = {"postgres": _check_postgres, "redis": _check_redis}
        failed = {}
        for name, check in checks.items():
            try:
                check()
            except Exception as exc:  # any failure means not ready
                log.warning("%s is not ready: %s", name, exc)
                failed[name] = type(exc).__name__  # the class only: messages can hold addresses
        body = jsonify(status="unavailable" if failed else "ok", failed=failed, release=settings.release)
        return body, 503 if failed else 200

    @app.post("/tasks")
    def create_task():
        try:
            seconds = float(request.args.get("seconds", 0))
        except ValueError:
            return jsonify(error="seconds must be a number"), 400
        if not 0 <= seconds <= MAX_TASK_SECONDS:
            return jsonify(error=f"seconds must be between 0 and {MAX_TASK_SECONDS}"), 400
        task_id = enqueue(request.args.get("note", ""), seconds)
        return jsonify(task_id=task_id, release=settings.release), 202

    @app.get("/tasks/<task_id>")
    def get_task(task_id):
        with db.connect(settings.database_url) as conn:
            row = conn.execute("SELECT * FROM task_results WHERE id = %s", (task_id,)).fetchone()
        if row is None:
            return jsonify(status="pending", task_id=task_id, release=settings.release), 404
        return jsonify(status="done", result=db.jsonable(row), release=settings.release)

    @app.get("/beat")
    def beat():
        with db.connect(settings.database_url) as conn:
            count = conn.execute("SELECT count(*) AS n FROM beat_ticks").fetchone()["n"]
            latest = conn.execute("SELECT * FROM beat_ticks ORDER BY id DESC LIMIT 1").fetchone()
        return jsonify(count=count, latest=latest and db.jsonable(latest), release=settings.release)

    def _check_postgres():
        with db.connect(settings.database_url) as conn:
            conn.execute("SELECT 1")

    def _check_redis():
        client = redis.Redis.from_url(settings.broker_url, socket_timeout=3, socket_connect_timeout=3)
        try:
            client.ping()
        finally:
            client.close()

    return app
