"""Kafka → Customer.io Track API."""
