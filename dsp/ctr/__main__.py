"""``python -m dsp.ctr train ...``: the same as ``dsp ctr train ...``."""

import sys

from dsp.ctr.cli import main

sys.exit(main())
