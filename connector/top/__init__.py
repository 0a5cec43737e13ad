"""``cio-connector top``: a live terminal view of a running instance, read from its /metrics and /readyz.

``scrape`` parses a scrape and computes rates between two (pure), ``view`` turns them into lines (pure),
``live`` does the I/O: HTTP, the terminal and keys.
"""
