"""``python -m pets.cli``: the ``pets`` command."""

from pets.cli import main

raise SystemExit(main())
