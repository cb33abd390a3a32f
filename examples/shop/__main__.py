"""`python -m examples.shop` (what `make example` runs): Redis if needed, one worker, and the shop's API."""

import sys

from run_platform import main

sys.exit(main(app="examples.shop.main:app"))
