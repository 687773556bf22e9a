"""Entry point of the frozen ``getmeds`` executable."""

import sys

from getmeds_desktop.app import main

sys.exit(main())
