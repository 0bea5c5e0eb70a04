import sys

from pcloud.cli import main

sys.exit(main())
