"""`python -m knet.cli`: the command without the lean launcher (tests, benchmarks)."""

import sys

from knet.cli.main import main

sys.exit(main())
