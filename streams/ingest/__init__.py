"""streams/ingest."""
