import sys

from mmface4d.cli import main

sys.exit(main())
