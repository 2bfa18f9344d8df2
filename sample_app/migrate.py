"""Release command: `python3 -m sample_app.migrate` creates the tables; safe to run again."""
import sys

from sample_app import db
from sample_app.config import ConfigError, Settings


def main():
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        sys.exit(f"configuration error: {exc}")
    with db.connect(settings.database_url) as conn:
        # Serialise concurrent runs: CREATE TABLE IF NOT EXISTS alone can race on the catalog.
        conn.execute("SELECT pg_advisory_xact_lock(4242)")
        conn.execute(db.SCHEMA)
    print(f"migrations applied (release {settings.release})")


if __name__ == "__main__":
    main()
