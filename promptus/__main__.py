import sys

from promptus.cli import main

sys.exit(main())
