"""streams/service."""
