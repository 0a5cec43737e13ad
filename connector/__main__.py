"""``python -m connector``: same as the ``cio-connector`` console script."""

from connector.cli import main

raise SystemExit(main())
