"""Customer.io reporting webhooks → Kafka."""
