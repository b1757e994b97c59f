import sys

from es_mpi.commands.cli import main

sys.exit(main())
