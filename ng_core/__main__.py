"""``python -m ng_core`` is the ``ng`` command."""
import sys

from ng_core.cli.main import main

sys.exit(main())
