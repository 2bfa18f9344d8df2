"""PostgreSQL access: one short-lived connection per unit of work keeps the demo simple."""
import psycopg
from psycopg.rows import dict_row

SCHEMA = """
CREATE TABLE IF NOT EXISTS task_results (
    id         text PRIMARY KEY,
    note       text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    worker     text NOT NULL
);
CREATE TABLE IF NOT EXISTS beat_ticks (
    id         bigserial PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    worker     text NOT NULL
);
"""


def connect(url):
    return psycopg.connect(url, connect_timeout=3, row_factory=dict_row)


def jsonable(row):
    return {key: value.isoformat() if hasattr(value, "isoformat") else value for key, value in row.items()}
