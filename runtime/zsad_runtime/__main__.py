"""``python -m zsad_runtime``: the ``zsad-runtime`` command."""
import sys

from zsad_runtime.cli import main

sys.exit(main())
