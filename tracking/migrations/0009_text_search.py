"""Indexes for the console's reads at a million events: the lead board's page per lead type, an exact tracker
id, and a text search of the events' data (what `data__icontains` scanned).

The data index is vendor-specific, so it is made here rather than described on the model:
- SQLite: an FTS5 table with the trigram tokenizer (substring matches, case-insensitive, as LIKE) over
  tracking_event.data, external content (the index only), kept in sync by triggers. A later migration that
  remakes tracking_event on SQLite drops the triggers with the old table (it must create them again):
  tests/test_text_search.py checks the index follows updates and deletes.
- PostgreSQL: a pg_trgm GIN index on UPPER(data::text), the expression Django's icontains compares, so the
  planner uses it for the unchanged query (pg_trgm is a trusted extension: a database owner may create it).
"""

from django.db import migrations, models

SQLITE_CREATE = [
    "CREATE VIRTUAL TABLE tracking_event_text USING fts5("
    "data, content='tracking_event', content_rowid='id', tokenize='trigram')",
    "CREATE TRIGGER tracking_event_text_insert AFTER INSERT ON tracking_event BEGIN "
    "INSERT INTO tracking_event_text(rowid, data) VALUES (new.id, new.data); END",
    "CREATE TRIGGER tracking_event_text_delete AFTER DELETE ON tracking_event BEGIN "
    "INSERT INTO tracking_event_text(tracking_event_text, rowid, data) VALUES ('delete', old.id, old.data); END",
    "CREATE TRIGGER tracking_event_text_update AFTER UPDATE OF data ON tracking_event BEGIN "
    "INSERT INTO tracking_event_text(tracking_event_text, rowid, data) VALUES ('delete', old.id, old.data); "
    "INSERT INTO tracking_event_text(rowid, data) VALUES (new.id, new.data); END",
    "INSERT INTO tracking_event_text(tracking_event_text) VALUES ('rebuild')",
]
SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS tracking_event_text_update",
    "DROP TRIGGER IF EXISTS tracking_event_text_delete",
    "DROP TRIGGER IF EXISTS tracking_event_text_insert",
    "DROP TABLE IF EXISTS tracking_event_text",
]
POSTGRES_CREATE = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX IF NOT EXISTS event_data_trgm ON tracking_event USING gin (UPPER(data::text) gin_trgm_ops)",
]
POSTGRES_DROP = ["DROP INDEX IF EXISTS event_data_trgm"]


def _run(statements: dict[str, list[str]]):
    def run(apps, schema_editor):
        for sql in statements.get(schema_editor.connection.vendor, []):
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("tracking", "0008_rollup_days"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="event",
            index=models.Index(fields=["event_type", "-received_at", "-id"], name="event_type_id_log"),
        ),
        migrations.AddIndex(
            model_name="event",
            index=models.Index(fields=["tracker_id"], name="event_tracker_id"),
        ),
        migrations.RunPython(
            _run({"sqlite": SQLITE_CREATE, "postgresql": POSTGRES_CREATE}),
            _run({"sqlite": SQLITE_DROP, "postgresql": POSTGRES_DROP}),
            elidable=False,
        ),
    ]
