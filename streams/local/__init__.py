"""streams/local."""
