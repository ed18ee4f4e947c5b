"""``python -m napari_mollifier.cli``: the ``mollifier`` command."""

from . import main

raise SystemExit(main())
