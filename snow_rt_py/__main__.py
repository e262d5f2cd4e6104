"""``python -m snow_rt_py``."""

import sys

from snow_rt_py.cli import main

sys.exit(main())
