import sys

from spikeverse.cli.app import main

sys.exit(main())
