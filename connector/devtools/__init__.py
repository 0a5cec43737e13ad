"""Developer tools: a real Kafka broker for development, tests and CI (``kafka_local``)."""
