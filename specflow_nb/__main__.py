"""``python -m specflow_nb``: the same as the ``specflow-nb`` command."""

from specflow_nb.cli import main

raise SystemExit(main())
