"""``python -m ng_core`` is the ``ng`` command."""
import sys

from .cli import main

sys.exit(main())
