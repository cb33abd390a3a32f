"""`python -m jobctl`."""

import sys

from jobctl.main import main

sys.exit(main())
