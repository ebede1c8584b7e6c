#!/usr/bin/env bash
# Remove xlfuncs from Excel on macOS: the xlfuncs add-in, its INTERPRETER_MAC line in
# xlwings.conf (the previous file is saved as xlwings.conf.bak) and its environment, also
# the one older installers made in ~/Library/Application Support/xlfuncs/venv. A folder is
# deleted only when it is a Python environment (has pyvenv.cfg). The xlwings add-in is
# removed only with --remove-xlwings (other tools may use it). The small environment holding
# uv (~/.xlfuncs/uv, when the installer had to install Python) goes too; a Python that uv
# installed stays, as any other Python of yours.
#
# Usage: install/uninstall.sh [--prefix DIR] [--home DIR] [--remove-xlwings]
#   --prefix DIR        the environment install.sh made (default ~/.xlfuncs/venv)
#   --home DIR          act on this folder instead of your home folder (for tests)
#   --remove-xlwings    also run xlwings addin remove
set -euo pipefail

usage() { awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "${BASH_SOURCE[0]}"; }

home="${HOME}"
prefix=""
remove_xlwings=0
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix|--home)
            [ $# -ge 2 ] || { echo "xlfuncs uninstall: $1 needs a value (see --help)" >&2; exit 2; }
            if [ "$1" = --prefix ]; then prefix="$2"; else home="$2"; fi
            shift 2 ;;
        --remove-xlwings) remove_xlwings=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "xlfuncs uninstall: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
prefix="${prefix:-$home/.xlfuncs/venv}"
case "$prefix" in /*) ;; *) prefix="$PWD/$prefix" ;; esac
old_prefix="$home/Library/Application Support/xlfuncs/venv"
startup="$home/Library/Group Containers/UBF8T346G9.Office/User Content.localized/Startup.localized/Excel"
conf="$home/Library/Containers/com.microsoft.Excel/Data/xlwings.conf"

echo "==> Removing the xlfuncs add-in"
if [ -f "$startup/xlfuncs.xlam" ]; then
    rm -f "$startup/xlfuncs.xlam"
    echo "    removed $startup/xlfuncs.xlam"
else
    echo "    not installed"
fi

if [ "$remove_xlwings" = 1 ]; then
    echo "==> Removing the xlwings add-in (xlwings addin remove)"
    if [ -x "$prefix/bin/xlwings" ]; then
        "$prefix/bin/xlwings" addin remove || true
    else
        echo "    xlwings is not in $prefix"
    fi
fi

if [ -f "$conf" ]; then
    echo "==> Removing xlfuncs' interpreter from $conf"
    cp -p "$conf" "$conf.bak"
    # only an INTERPRETER_MAC that points into one of xlfuncs' environments; no blank lines
    awk -v new="$prefix/bin/python" -v old="$old_prefix/bin/python" -v out="$conf.tmp" '
        BEGIN { printf "" > out }
        { line = $0; sub(/\r$/, "", line) }
        line ~ /^[ \t]*$/ { next }
        toupper(line) ~ /^[ \t]*"INTERPRETER_MAC"[ \t]*,/ {
            value = line; sub(/^[^,]*,[ \t]*"/, "", value); sub(/"[ \t]*$/, "", value)
            if (value == new || value == old) { print "    removed INTERPRETER_MAC (" value ")"; next }
        }
        { print > out }' "$conf.bak"
    mv "$conf.tmp" "$conf"
    echo "    the previous file is $conf.bak"
fi

remove_env() {  # DIR: delete it only when it is a Python environment
    if [ -f "$1/pyvenv.cfg" ]; then
        rm -rf "$1"
        case "$(dirname "$1")" in  # ~/.xlfuncs or .../xlfuncs, when nothing else is in it
            */xlfuncs|*/.xlfuncs) rmdir "$(dirname "$1")" 2>/dev/null || true ;;
        esac
        echo "    removed $1"
    elif [ -e "$1" ]; then
        echo "    left in place: $1 has no pyvenv.cfg, so it is not a Python environment the installer made"
    else
        echo "    not there: $1"
    fi
}
echo "==> Removing the environment"
remove_env "$prefix"
if [ "$old_prefix" != "$prefix" ] && [ -e "$old_prefix" ]; then remove_env "$old_prefix"; fi
if [ -e "$home/.xlfuncs/uv" ]; then remove_env "$home/.xlfuncs/uv"; fi
echo "xlfuncs is uninstalled."
