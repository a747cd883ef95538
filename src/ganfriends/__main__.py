"""``python -m ganfriends`` is the same as the ``ganfriends`` command."""

from ganfriends.cli import main

raise SystemExit(main())
