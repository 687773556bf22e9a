"""Entry point of the frozen ``getmeds-admin`` executable."""

import sys

from getmeds_desktop.cli import main

sys.exit(main())
