"""`python -m solvers`: the demo and the reconstruction command (see solvers/app/cli.py)."""

from .app.cli import main

raise SystemExit(main())
