"""Customer.io over HTTP: the client (``client.py``, no retries) and region resolution (``region.py``)."""
