"""A local fake of a Confluent-compatible Schema Registry (the REST subset the connector and the
serializers use), over real HTTP. Apicurio Registry's Maven artifact is a Quarkus module, not a runnable
application, so the tests use this instead (docs/inputs.md)."""
