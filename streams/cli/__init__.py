"""streams/cli."""
