"""Celery app `sample_app.tasks:celery`: a task the web enqueues and a beat heartbeat."""
import time

from celery import Celery

from sample_app import db
from sample_app.config import Settings

settings = Settings.from_env()

celery = Celery("sample_app", broker=settings.broker_url)
celery.conf.update(
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    beat_schedule={
        "heartbeat": {"task": "sample_app.tasks.heartbeat", "schedule": settings.beat_interval},
    },
)


@celery.task(bind=True)
def record_note(self, note, seconds=0):
    # A task that takes `seconds` first shows whether stopping a worker loses it.
    time.sleep(seconds)
    with db.connect(settings.database_url) as conn:
        conn.execute(
            "INSERT INTO task_results (id, note, worker) VALUES (%s, %s, %s) ON CONFLICT (id) DO NOTHING",
            (self.request.id, note, self.request.hostname),
        )


@celery.task(bind=True)
def heartbeat(self):
    with db.connect(settings.database_url) as conn:
        conn.execute("INSERT INTO beat_ticks (worker) VALUES (%s)", (self.request.hostname,))


def enqueue_note(note, seconds=0):
    return record_note.delay(note, seconds).id
