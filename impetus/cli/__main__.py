"""``python -m impetus.cli``: the ``impetus`` command."""

from impetus.cli.main import main

raise SystemExit(main())
