"""The HTTP API (FastAPI): position ingest from phones; see api/app.py."""
