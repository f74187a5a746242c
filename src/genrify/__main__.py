import sys

from genrify.cli import main

sys.exit(main())
