"""streams/offline."""
