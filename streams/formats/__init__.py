"""streams/formats."""
