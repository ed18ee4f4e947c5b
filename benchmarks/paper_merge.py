"""Combine the records of several ``mollifier benchmark --json`` runs into one paper table.

    .venv/bin/python benchmarks/paper_merge.py OUT.md FIGURE.png RUN.json [RUN.json ...] --command TEXT

The papers' full table comes from runs too long to repeat together on this 2-core
machine (the 1st/2nd-order fits, the chromatin fits, the 4th-order step costs); each run saves
its records with ``--json``, and this script renders them with the same report functions as
``mollifier benchmark --markdown`` (``paper_markdown``, ``alignment_figure``). ``--command``
is the text shown as "Reproduce" (the commands of the runs merged).
"""

import argparse
import json
import os
from pathlib import Path

from mollifier_bench import alignment_figure, paper_markdown
from napari_mollifier.io import atomic_write_text


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("markdown", type=Path)
    ap.add_argument("figure", type=Path)
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--command", required=True)
    args = ap.parse_args()
    records = []
    for path in args.runs:
        records += json.loads(path.read_text())
    fits = [r for r in records if r.get("kind") == "fit"]
    figure = None
    if alignment_figure(fits, args.figure):
        figure = os.path.relpath(args.figure, args.markdown.parent)
    atomic_write_text(args.markdown, paper_markdown(records, args.command, figure))
    print(f"wrote {args.markdown} ({len(records)} records) and {args.figure}")


if __name__ == "__main__":
    main()
