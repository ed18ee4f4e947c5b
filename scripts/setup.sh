#!/usr/bin/env bash
# Set up a development environment for napari-mollifier in ./.venv (idempotent).
#
#   bash scripts/setup.sh          # .venv with torch (only if missing) and `pip install -e '.[dev]'`
#   bash scripts/setup.sh --gui    # also the Debian packages the GUI tests need (xvfb, Mesa, Qt's xcb libs)
#
# Environment:
#   PYTHON      interpreter used to create .venv (default: python3); must be Python >= 3.11
#   TORCH_SPEC  what to pip-install when `import torch` fails in .venv (default: torch==2.13.0),
#               e.g. TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cpu".
#               An already-installed torch (your CUDA/ROCm/CPU build) is never replaced.
#
# Quiet on success; on failure the output of the failing step is printed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

GUI=0
for arg in "$@"; do
    case "$arg" in
        --gui) GUI=1 ;;
        -h | --help) sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "setup.sh: unknown argument '$arg' (expected --gui)" >&2; exit 2 ;;
    esac
done

PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
VENV="$ROOT/.venv"
VPY="$VENV/bin/python"
LOG="$(mktemp "${TMPDIR:-/tmp}/mollifier-setup.XXXXXX")"
trap 'rm -f "$LOG"' EXIT

say() { echo "setup: $*"; }
die() { echo "setup: error: $*" >&2; exit 1; }

# Run a command with its output captured; show the output only if it fails.
quiet() {
    if ! "$@" >"$LOG" 2>&1; then
        echo "setup: error: command failed: $*" >&2
        tail -n 60 "$LOG" >&2
        exit 1
    fi
}

IS_ROOT=0
[ "$(id -u)" = 0 ] && IS_ROOT=1
HAVE_APT=0
command -v apt-get >/dev/null 2>&1 && command -v dpkg-query >/dev/null 2>&1 && HAVE_APT=1
APT_UPDATED=0

# Install the Debian packages among "$@" that are not installed yet (root only).
apt_install() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$IS_ROOT" != 1 ]; then
        die "missing Debian packages: ${missing[*]}
       install them with: sudo apt-get install -y ${missing[*]}"
    fi
    say "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if [ "$APT_UPDATED" = 0 ]; then
        quiet apt-get update -q
        APT_UPDATED=1
    fi
    quiet apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# --- 1. system packages for the GUI tests -------------------------------------------------
# The minimal set, checked on a bare Debian 12 (debootstrap minbase) with PyQt6 6.11 wheels:
# xvfb + xauth: virtual X display for xvfb-run; libgl1-mesa-dri: Mesa's software OpenGL;
# the rest: libraries that PyQt6's Qt libraries and xcb platform plugin link against and that
# xvfb does not bring along (Qt 6 needs libxcb-cursor0).
GUI_PACKAGES=(
    xvfb xauth libgl1-mesa-dri
    libegl1 libdbus-1-3 libfontconfig1 libglib2.0-0 libxkbcommon-x11-0
    libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-render-util0 libxcb-shape0 libxcb-xkb1
)
if [ "$GUI" = 1 ]; then
    if [ "$HAVE_APT" = 1 ]; then
        apt_install "${GUI_PACKAGES[@]}"
    elif ! command -v xvfb-run >/dev/null 2>&1; then
        say "warning: not a Debian system and no xvfb-run found; GUI tests need an X display"
    fi
fi

# --- 2. Python >= 3.11 and the virtual environment ----------------------------------------
check_python() {  # $1: interpreter; prints its version, fails if < 3.11
    "$1" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3]); sys.exit(sys.version_info < (3, 11))'
}
if [ ! -x "$VPY" ]; then
    command -v "$PYTHON" >/dev/null 2>&1 || die "'$PYTHON' not found: install Python >= 3.11 or set PYTHON=/path/to/python3.11+"
    if ! PYVER="$(check_python "$PYTHON")"; then
        die "napari-mollifier needs Python >= 3.11, but '$PYTHON' is Python $PYVER.
       Install a newer Python and run again with PYTHON=/path/to/python3.11+ (napari >= 0.8 needs 3.11 too)."
    fi
    say "creating .venv with $PYTHON (Python $PYVER)"
    if ! "$PYTHON" -m venv "$VENV" >"$LOG" 2>&1; then
        rm -rf "$VENV"
        if [ "$HAVE_APT" = 1 ] && [ "$IS_ROOT" = 1 ]; then
            # Debian ships venv/ensurepip separately, as python3.X-venv.
            MINOR="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
            if [ "$APT_UPDATED" = 0 ]; then quiet apt-get update -q; APT_UPDATED=1; fi
            VENV_PKG=python3-venv
            apt-cache show "python$MINOR-venv" >/dev/null 2>&1 && VENV_PKG="python$MINOR-venv"
            apt_install "$VENV_PKG"
            quiet "$PYTHON" -m venv "$VENV"
        else
            cat "$LOG" >&2
            die "'$PYTHON -m venv' failed; on Debian/Ubuntu: sudo apt-get install python3-venv"
        fi
    fi
fi
PYVER="$(check_python "$VPY")" || die ".venv has Python $PYVER, but >= 3.11 is needed: remove .venv and run again"

# Skip the pip steps when nothing changed since the last successful run.
STAMP="$VENV/.mollifier-setup"
INSTALLED='import torch, importlib.metadata as m; m.version("napari-mollifier")'
WANT="$(cat pyproject.toml "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1) $PYVER $ROOT"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] \
    && "$VPY" -c "$INSTALLED" >/dev/null 2>&1; then
    say "environment up to date (.venv, Python $PYVER)"
    exit 0
fi
rm -f "$STAMP"

PIP=("$VPY" -m pip --disable-pip-version-check)

# --- 3. torch: keep the user's build; install TORCH_SPEC only when none is importable ------
if "$VPY" -c 'import torch' >/dev/null 2>&1; then
    say "using installed torch $("$VPY" -c 'import torch; print(torch.__version__)')"
else
    say "installing $TORCH_SPEC"
    # shellcheck disable=SC2086  # TORCH_SPEC may carry extra pip options on purpose
    quiet "${PIP[@]}" install $TORCH_SPEC
fi

# --- 4. the package itself, editable, with the dev extra ----------------------------------
say "pip install -e '.[dev]'"
quiet "${PIP[@]}" install -e '.[dev]'
"$VPY" -c "$INSTALLED" >"$LOG" 2>&1 || { cat "$LOG" >&2; die "torch or napari-mollifier missing after installation"; }

echo "$WANT" >"$STAMP"
say "done: .venv (Python $PYVER, torch $("$VPY" -c 'import torch; print(torch.__version__)'))"
