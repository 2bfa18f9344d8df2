"""WSGI entry point: `gunicorn sample_app.wsgi:app`."""
from sample_app import tasks
from sample_app.web import create_app

app = create_app(tasks.settings, enqueue=tasks.enqueue_note)
