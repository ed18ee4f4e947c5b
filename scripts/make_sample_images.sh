#!/usr/bin/env bash
# Regenerate sample_images/: three simulated 256x256 nuclei at 10 nm/pixel (steady states of the
# default "chr" model) with their ground-truth rate maps, and one localisation table.
#   bash scripts/make_sample_images.sh        (about a minute on 2 CPU cores)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
M=${MOLLIFIER:-.venv/bin/mollifier}
"$M" simulate --out sample_images --name nucleus1 --rates gradient --mask ellipse --seed 1 --localisations
"$M" simulate --out sample_images --name nucleus2 --rates patches --mask circle --seed 2
"$M" simulate --out sample_images --name nucleus3 --rates uniform --mask ellipse --seed 3
