"""reachwatch.streams: access events, adapters, the scoring pipeline and the Faust service."""
