"""cio-connector: Kafka ↔ Customer.io."""

__version__ = "0.1.0"
