#!/usr/bin/env bash
# Install xlfuncs for Excel on macOS: Python environment, xlwings add-in, xlfuncs add-in.
#
# Each step says what it does and stops with a clear message when it fails:
#   1. find Python 3.11 or later
#   2. create a virtual environment in ~/Library/Application Support/xlfuncs/venv
#   3. pip install xlfuncs (from this repository, or --source)
#   4. xlwings addin install (the add-in and the AppleScript file RunPython needs)
#   5. write ~/Library/Containers/com.microsoft.Excel/Data/xlwings.conf: INTERPRETER_MAC
#      (other settings kept)
#   6. copy workbooks/xlfuncs.xlam (the xlfuncs ribbon tab) into Excel's start-up folder
#   7. xlfuncs doctor
# On a Mac, classic xlwings runs the ribbon buttons (macros) but no worksheet functions
# (UDFs are Windows-only): use the xlfuncs command line for those numbers.
#
# Usage: install/install.sh [--source PATH] [--prefix DIR] [--dry-run]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source_dir="$(dirname "$here")"
home="${HOME}"
prefix=""
dry_run=0
while [ $# -gt 0 ]; do
    case "$1" in
        --source) source_dir="$2"; shift 2 ;;
        --prefix) prefix="$2"; shift 2 ;;
        --home) home="$2"; shift 2 ;;   # for tests: act on another home folder
        --dry-run) dry_run=1; shift ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "xlfuncs install: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
prefix="${prefix:-$home/Library/Application Support/xlfuncs/venv}"
conf_dir="$home/Library/Containers/com.microsoft.Excel/Data"
startup="$home/Library/Group Containers/UBF8T346G9.Office/User Content.localized/Startup.localized/Excel"

step() { printf '\n==> %s\n' "$1"; }
fail() { printf 'xlfuncs install: %s\n' "$1" >&2; exit 1; }
run() {  # run DESCRIPTION COMMAND...
    local what="$1"; shift
    if [ "$dry_run" = 1 ]; then printf '    (dry run) %s\n' "$what"; return 0; fi
    "$@" || fail "$what failed (exit code $?)"
}

if [ "$(uname -s)" != "Darwin" ] && [ "$dry_run" = 0 ]; then
    fail "this installer is for macOS; on Windows run install\\install.cmd, elsewhere pip install the repository and use the xlfuncs command line"
fi

step "1/7 Finding Python 3.11 or later"
python=""
for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
        "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11))' 2>/dev/null; then
        python="$(command -v "$candidate")"; break
    fi
done
[ -n "$python" ] || fail "no Python 3.11 or later found: install it from https://www.python.org and run this again"
echo "    $python"

step "2/7 Creating the environment in $prefix"
run "python -m venv" "$python" -m venv "$prefix"

step "3/7 Installing xlfuncs from $source_dir"
run "pip install" "$prefix/bin/python" -m pip install --upgrade "$source_dir"

step "4/7 Installing the xlwings add-in (xlwings addin install)"
run "xlwings addin install" "$prefix/bin/xlwings" addin install

step "5/7 Writing $conf_dir/xlwings.conf"
if [ "$dry_run" = 1 ]; then
    echo "    (dry run) INTERPRETER_MAC = $prefix/bin/python"
else
    mkdir -p "$conf_dir"
    conf="$conf_dir/xlwings.conf"
    kept=""
    if [ -f "$conf" ]; then kept="$(grep -v '^"INTERPRETER_MAC",' "$conf" | grep -v '^[[:space:]]*$' || true)"; fi
    { [ -n "$kept" ] && printf '%s\n' "$kept"; printf '"INTERPRETER_MAC","%s"\n' "$prefix/bin/python"; } > "$conf.tmp"
    mv "$conf.tmp" "$conf"
fi

step "6/7 Installing the xlfuncs add-in (ribbon tab) into Excel's start-up folder"
addin="$source_dir/workbooks/xlfuncs.xlam"
[ -f "$addin" ] || fail "$addin is missing: run this script from a copy of the xlfuncs repository"
run "copy the add-in to $startup" mkdir -p "$startup"
run "copy the add-in to $startup" cp "$addin" "$startup/xlfuncs.xlam"

step "7/7 Checking the installation (xlfuncs doctor)"
run "xlfuncs doctor" "$prefix/bin/xlfuncs" doctor

printf '\nDone. Start Excel: the xlfuncs tab is on the ribbon (worksheet functions need Excel on Windows).\n'
