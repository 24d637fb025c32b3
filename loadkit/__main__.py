"""Internal: ``python -m loadkit`` runs the command line."""

from loadkit.cli import main

raise SystemExit(main())
