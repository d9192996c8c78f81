import sys

from zsad.demo.cli import main

sys.exit(main())
