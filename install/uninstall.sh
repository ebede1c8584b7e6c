#!/usr/bin/env bash
# Remove xlfuncs from Excel on macOS: the xlfuncs add-in, its xlwings.conf line and its
# environment. The xlwings add-in is removed only with --remove-xlwings.
# Usage: install/uninstall.sh [--prefix DIR] [--remove-xlwings]
set -euo pipefail
home="${HOME}"
prefix=""
remove_xlwings=0
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix="$2"; shift 2 ;;
        --home) home="$2"; shift 2 ;;
        --remove-xlwings) remove_xlwings=1; shift ;;
        *) echo "xlfuncs uninstall: unknown option $1" >&2; exit 2 ;;
    esac
done
prefix="${prefix:-$home/Library/Application Support/xlfuncs/venv}"
startup="$home/Library/Group Containers/UBF8T346G9.Office/User Content.localized/Startup.localized/Excel"
conf="$home/Library/Containers/com.microsoft.Excel/Data/xlwings.conf"

echo "==> Removing the xlfuncs add-in"
rm -f "$startup/xlfuncs.xlam"
if [ "$remove_xlwings" = 1 ] && [ -x "$prefix/bin/xlwings" ]; then
    echo "==> Removing the xlwings add-in"
    "$prefix/bin/xlwings" addin remove
fi
if [ -f "$conf" ]; then
    echo "==> Removing xlfuncs' interpreter from $conf"
    grep -v "^\"INTERPRETER_MAC\",\"$prefix/bin/python\"" "$conf" > "$conf.tmp" || true
    mv "$conf.tmp" "$conf"
fi
echo "==> Removing $prefix"
rm -rf "$prefix"
echo "xlfuncs is uninstalled."
