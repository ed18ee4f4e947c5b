#!/usr/bin/env bash
# Run the test suite (tests/) under a virtual X display, after setting up .venv and the Debian
# packages the GUI tests need (scripts/setup.sh --gui).
#
# By default pytest deselects the tests marked `slow` (the long end-to-end fits, over 10 minutes
# together): the fast suite takes a few minutes on 2 CPU cores. `--slow` runs the slow fits only.
# Both are done by tests/conftest.py (a pytest option), so plain `pytest` behaves the same.
#
#   bash scripts/test.sh                  # the fast suite
#   bash scripts/test.sh --slow           # the slow fits only
#   bash scripts/test.sh -m "not gui" -x  # extra arguments go to pytest (with or without --slow)
#   TEST_WORKERS=0 bash scripts/test.sh   # one process instead of two pytest-xdist workers
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/setup.sh --gui

if command -v xvfb-run >/dev/null 2>&1; then
    # 24-bit screen: xvfb-run's default depth of 8 is too poor for OpenGL rendering.
    RUN=(xvfb-run -a -s "-screen 0 1280x1024x24")
else
    echo "test: warning: xvfb-run not found; using the current display (DISPLAY=${DISPLAY:-unset})" >&2
    RUN=()
fi

# Two pytest workers (pytest-xdist), one torch/BLAS thread each: on two cores the fast suite takes
# ~3 min instead of ~5 with one process. Each test module runs whole on one worker, in file order
# (--dist loadfile): some modules check at their end what their earlier tests did.
# TEST_WORKERS=0 runs in one process (e.g. to debug).
WORKERS=(-n "${TEST_WORKERS:-2}" --dist loadfile)
[ "${TEST_WORKERS:-2}" = 0 ] && WORKERS=(-p no:xdist)
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

set +e
"${RUN[@]}" .venv/bin/python -m pytest "${WORKERS[@]}" "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
    echo "test: error: pytest collected no tests" >&2
fi
exit "$rc"
