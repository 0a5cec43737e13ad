"""Developer tools: a real Kafka broker for development, tests and CI (``kafka_jars`` fetches it,
``kafka_broker`` runs it, ``kafka_local`` is its command line), sample traffic and the demo producer."""
