import sys

from matting.cli import main

sys.exit(main())
