"""``python -m connector.config --markdown``: print the settings table for the README."""

import sys

from connector.config.loading import _main

raise SystemExit(_main(sys.argv[1:], sys.stdout.write))
