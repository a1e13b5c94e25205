"""reachwatch.models: features, detector, registry, training (no Kafka needed)."""
