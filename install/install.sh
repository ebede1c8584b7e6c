#!/usr/bin/env bash
# Install xlfuncs for Excel on macOS: Python environment, xlwings add-in, xlfuncs add-in.
#
# Each step says what it does and stops with a clear message when it fails:
#   1. find the newest Python in the supported range (xlfuncs/supported_pythons.txt: the
#      versions for which every dependency has binary wheels); without one, install that
#      range's newest with uv (no administrator rights; uv itself is installed with any
#      Python there is), or stop naming the version to get from python.org
#   2. create a virtual environment in ~/.xlfuncs/venv (a path without spaces: xlwings'
#      AppleScript runs the interpreter unquoted); one made by another Python version
#      is recreated
#   3. pip install xlfuncs (from this repository, or --source), dependencies from binary
#      wheels only (--only-binary=:all:): nothing is compiled
#   4. xlwings addin install (the add-in and the AppleScript file RunPython needs),
#      then check that both are in place
#   5. write ~/Library/Containers/com.microsoft.Excel/Data/xlwings.conf: INTERPRETER_MAC
#      (other settings kept; the previous file is saved as xlwings.conf.bak)
#   6. copy workbooks/xlfuncs.xlam (the xlfuncs ribbon tab) into Excel's start-up folder
#   7. xlfuncs doctor (a FAIL in its table ends the install with a warning)
# On a Mac, classic xlwings runs the ribbon buttons (macros) but no worksheet functions
# (UDFs are Windows-only): use the xlfuncs command line for those numbers.
#
# Usage: install/install.sh [--source PATH] [--prefix DIR] [--home DIR] [--dry-run]
#   --source PATH  what to pip install: a folder with pyproject.toml or a wheel (default:
#                  this repository; the add-in always comes from this repository)
#   --prefix DIR   where the environment goes (default ~/.xlfuncs/venv); no spaces
#   --home DIR     act on this folder instead of your home folder (for tests)
#   --dry-run      print the steps without changing anything (runs on any system)
set -euo pipefail

usage() { awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "${BASH_SOURCE[0]}"; }
step() { printf '\n==> %s\n' "$1"; }
note() { printf '    %s\n' "$1"; }
fail() { printf 'xlfuncs install: %s\n' "$1" >&2; exit 1; }
run() {  # run DESCRIPTION COMMAND...
    local what="$1"; shift
    if [ "$dry_run" = 1 ]; then printf '    (dry run) %s\n' "$what"; return 0; fi
    "$@" || fail "$what failed (exit code $?)"
}

# True when PATH cannot go unquoted into the shell command of xlwings' AppleScript
# (do shell script PYTHON -c ...): a space, a quote, $, & and the like.
unsafe_for_applescript() {
    case "$1" in
        *[![:alnum:]/._+@%,=-]*) return 0 ;;
        *) return 1 ;;
    esac
}

# "OLDEST NEWEST" (e.g. "3.11 3.14") from the range file FILE, status 1 when it has none.
supported_range() {
    [ -f "$1" ] || return 1
    awk -F= '/^[ \t]*#/ { next }
             { gsub(/[ \t\r]/, "", $1); gsub(/[ \t\r]/, "", $2) }
             $1 == "oldest" { oldest = $2 } $1 == "newest" { newest = $2 }
             END { if (oldest ~ /^3\.[0-9]+$/ && newest ~ /^3\.[0-9]+$/) print oldest, newest
                   else exit 1 }' "$1"
}

# True when VERSION (3.X) is from OLDEST to NEWEST.
in_range() {  # VERSION OLDEST NEWEST
    local v="${1#3.}" lo="${2#3.}" hi="${3#3.}"
    [ "${1%%.*}" = 3 ] && [ "$v" -ge "$lo" ] && [ "$v" -le "$hi" ]
}

# True for /usr/bin/python3 on a Mac without the Command Line Tools: running it only opens
# a dialog offering to install them.
macos_stub() {
    [ "$1" = /usr/bin/python3 ] && [ "$(uname -s)" = Darwin ] && ! xcode-select -p >/dev/null 2>&1
}

# The Pythons on PATH (python3.N and python3), one "VERSION PATH" line each, newest first;
# passed-over stubs are left out.
pythons_on_path() {
    local n candidate path version seen=" "
    for candidate in python3 $(n=30; while [ "$n" -ge 6 ]; do printf 'python3.%d ' "$n"; n=$((n - 1)); done); do
        path="$(command -v "$candidate" 2>/dev/null)" || continue
        case "$seen" in *" $path "*) continue ;; esac
        seen="$seen$path "
        macos_stub "$path" && continue
        version="$("$path" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" || continue
        case "$version" in 3.[0-9]*) printf '%s %s\n' "$version" "$path" ;; esac
    done | sort -t. -k2,2nr -s
}

# The major.minor version in DIR/pyvenv.cfg (empty when there is none).
venv_version() {
    [ -f "$1/pyvenv.cfg" ] || return 0
    awk -F= '$1 ~ /^[ \t]*version(_info)?[ \t]*$/ { gsub(/[ \t\r]/, "", $2); split($2, v, ".");
             print v[1] "." v[2]; exit }' "$1/pyvenv.cfg"
}

# Set INTERPRETER_MAC in the xlwings.conf CONF to PYTHON: other lines kept, blank lines
# dropped (a blank line can stop xlwings), the previous file saved as CONF.bak.
write_conf() {
    local conf="$1" interpreter="$2" kept=""
    mkdir -p "$(dirname "$conf")"
    if [ -f "$conf" ]; then
        cp -p "$conf" "$conf.bak"
        # xlwings compares keys case-insensitively and uses the first match: drop them all
        kept="$(grep -v -i '^[[:space:]]*"INTERPRETER_MAC"[[:space:]]*,' "$conf" |
                grep -v '^[[:space:]]*$' || true)"
    fi
    {
        if [ -n "$kept" ]; then printf '%s\n' "$kept"; fi
        printf '"INTERPRETER_MAC","%s"\n' "$interpreter"
    } > "$conf.tmp"
    mv "$conf.tmp" "$conf"
}

# Why xlwings' add-in is not (properly) installed, or nothing with status 0 when it is:
# xlwings addin install prints its errors but exits 0.
check_xlwings_addin() {  # PREFIX STARTUP APPLICATION_SCRIPTS
    local prefix="$1" startup="$2" scripts="$3" f shipped="" applescript=""
    for f in "$prefix"/lib/python3*/site-packages/xlwings/addin/xlwings.xlam; do
        if [ -f "$f" ]; then shipped="$f"; fi
    done
    for f in "$prefix"/lib/python3*/site-packages/xlwings/xlwings-*.applescript; do
        if [ -f "$f" ]; then applescript="${f##*/}"; fi
    done
    if [ ! -f "$startup/xlwings.xlam" ]; then
        echo "the xlwings add-in is not in $startup"; return 1
    fi
    if [ -n "$shipped" ] && ! cmp -s "$shipped" "$startup/xlwings.xlam"; then
        echo "$startup/xlwings.xlam is not the add-in of the xlwings just installed"; return 1
    fi
    if [ -n "$applescript" ] && [ ! -f "$scripts/$applescript" ]; then
        echo "$scripts/$applescript, which the buttons run, is missing"; return 1
    fi
}

# True when the output of xlfuncs doctor has a FAIL line.
doctor_failed() { grep -Eq '[[:space:]]FAIL([[:space:]]|$)' <<< "$1"; }

# Install Python NEWEST with uv, without administrator rights: the uv on PATH, else one
# installed into the environment TOOLS by BOOTSTRAP (any Python 3.8 or later). Sets
# $provisioned to the interpreter. Stops with the version to get from python.org when
# there is neither.
provision_python() {  # NEWEST BOOTSTRAP TOOLS
    local newest="$1" bootstrap="$2" tools="$3" uv
    note "no Python from ${oldest:-3} to $newest is installed: installing Python $newest with uv"
    if uv="$(command -v uv 2>/dev/null)"; then
        :
    elif [ -n "$bootstrap" ]; then
        uv="$tools/bin/uv"
        run "$bootstrap -m venv $tools" "$bootstrap" -m venv "$tools"
        run "$tools/bin/python -m pip install --only-binary=:all: uv" \
            "$tools/bin/python" -m pip install --only-binary=:all: uv
    else
        fail "no Python from ${oldest:-3} to $newest found, and no Python to install it with: install Python $newest from https://www.python.org/downloads/ and run this again"
    fi
    run "$uv python install $newest" "$uv" python install "$newest"
    if [ "$dry_run" = 1 ]; then
        provisioned="\$($uv python find $newest)"
        printf '    (dry run) %s\n' "$uv python find $newest"
    else
        provisioned="$("$uv" python find "$newest")" ||
            fail "uv installed Python $newest but cannot find it: install Python $newest from https://www.python.org/downloads/ and run this again"
    fi
}

main() {
    local here repo source_dir home prefix dry_run=0
    here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
    repo="$(dirname "$here")"
    source_dir="$repo"
    home="${HOME}"
    prefix=""
    while [ $# -gt 0 ]; do
        case "$1" in
            --source|--prefix|--home)
                [ $# -ge 2 ] || { echo "xlfuncs install: $1 needs a value (see --help)" >&2; exit 2; }
                case "$1" in
                    --source) source_dir="$2" ;;
                    --prefix) prefix="$2" ;;
                    --home) home="$2" ;;
                esac
                shift 2 ;;
            --dry-run) dry_run=1; shift ;;
            -h|--help) usage; exit 0 ;;
            *) echo "xlfuncs install: unknown option $1 (see --help)" >&2; exit 2 ;;
        esac
    done
    prefix="${prefix:-$home/.xlfuncs/venv}"
    case "$prefix" in /*) ;; *) prefix="$PWD/$prefix" ;; esac
    local conf_dir="$home/Library/Containers/com.microsoft.Excel/Data"
    local startup="$home/Library/Group Containers/UBF8T346G9.Office/User Content.localized/Startup.localized/Excel"
    local scripts="$home/Library/Application Scripts/com.microsoft.Excel"
    local old_prefix="$home/Library/Application Support/xlfuncs/venv"  # older installers' default
    local addin="$repo/workbooks/xlfuncs.xlam"

    if [ "$(uname -s)" != "Darwin" ] && [ "$dry_run" = 0 ]; then
        fail "this installer is for macOS; on Windows run install\\install.cmd, elsewhere pip install the repository and use the xlfuncs command line"
    fi
    [ -e "$source_dir" ] || fail "--source $source_dir does not exist"
    if unsafe_for_applescript "$prefix/bin/python"; then
        fail "$prefix has a space or another character that xlwings cannot pass to the shell unquoted: choose another --prefix (letters, digits and / . _ - only)"
    fi

    local range_file="$repo/xlfuncs/supported_pythons.txt" range oldest newest provisioned=""
    range="$(supported_range "$range_file")" ||
        fail "$range_file is missing or unreadable: run this script from a copy of the xlfuncs repository"
    read -r oldest newest <<< "$range"
    step "1/7 Finding Python $oldest to $newest (the versions xlfuncs installs on without compiling)"
    local python="" python_version="" bootstrap="" version path passed=()
    while read -r version path; do
        [ -n "$path" ] || continue
        if in_range "$version" "$oldest" "$newest"; then
            if [ -z "$python" ]; then python="$path"; python_version="$version"; fi
        else
            passed+=("$path (Python $version)")
            # any Python can install uv; the newest one found does
            if [ -z "$bootstrap" ] && [ "${version#3.}" -ge 8 ]; then bootstrap="$path"; fi
        fi
    done <<< "$(pythons_on_path)"
    if [ "${#passed[@]}" -gt 0 ]; then note "passed over: ${passed[*]}"; fi
    if [ -z "$python" ]; then
        provision_python "$newest" "$bootstrap" "$home/.xlfuncs/uv"
        python="$provisioned"; python_version="$newest"
    fi
    note "Python $python_version: $python"

    step "2/7 Creating the environment in $prefix"
    local venv_args=(-m venv) had
    if [ -f "$prefix/pyvenv.cfg" ]; then
        had="$(venv_version "$prefix")"
        if [ "$had" != "$python_version" ]; then
            note "it was made with Python ${had:-of an unknown version}: recreating it with Python $python_version (--clear)"
            venv_args+=(--clear)
        elif [ ! -x "$prefix/bin/python" ]; then
            note "it is incomplete: recreating it (--clear)"
            venv_args+=(--clear)
        else
            note "already there (Python $had): updating it"
        fi
    elif [ -d "$prefix" ] && [ -n "$(find "$prefix" -mindepth 1 -maxdepth 1 | head -n 1)" ]; then
        fail "$prefix exists but is not a Python environment (no pyvenv.cfg): move it away or choose another --prefix"
    fi
    run "$python ${venv_args[*]} $prefix" "$python" "${venv_args[@]}" "$prefix"

    step "3/7 Installing xlfuncs from $source_dir"
    # binary wheels only for the dependencies (never a compiler); a folder of xlfuncs itself is
    # still built, which is pure Python
    run "pip install --upgrade --only-binary=:all: $source_dir" \
        "$prefix/bin/python" -m pip install --upgrade --only-binary=:all: "$source_dir"

    step "4/7 Installing the xlwings add-in (xlwings addin install)"
    run "xlwings addin install" "$prefix/bin/xlwings" addin install
    if [ "$dry_run" = 1 ]; then
        note "(dry run) check that $startup/xlwings.xlam and the AppleScript in $scripts are xlwings'"
    else
        local why
        if ! why="$(check_xlwings_addin "$prefix" "$startup" "$scripts")"; then
            fail "$why: xlwings addin install did not work (its message is above). Is Excel installed? Quit Excel (Cmd-Q) and run this again"
        fi
        note "$startup/xlwings.xlam"
    fi

    step "5/7 Writing $conf_dir/xlwings.conf"
    if [ "$dry_run" = 1 ]; then
        note "(dry run) INTERPRETER_MAC = $prefix/bin/python (the old file as xlwings.conf.bak)"
    else
        write_conf "$conf_dir/xlwings.conf" "$prefix/bin/python"
        note "INTERPRETER_MAC = $prefix/bin/python"
    fi
    if [ -f "$old_prefix/pyvenv.cfg" ]; then
        note "the environment an older installer made, $old_prefix, is no longer used"
        note "(xlwings cannot run a path with a space): remove it with rm -rf \"$old_prefix\""
    fi

    step "6/7 Installing the xlfuncs add-in (ribbon tab) into Excel's start-up folder"
    [ -f "$addin" ] || fail "$addin is missing: run this script from a copy of the xlfuncs repository"
    run "create $startup" mkdir -p "$startup"
    run "copy $addin to $startup" cp "$addin" "$startup/xlfuncs.xlam"

    step "7/7 Checking the installation (xlfuncs doctor)"
    if [ "$dry_run" = 1 ]; then
        note "(dry run) xlfuncs doctor"
        printf '\nDry run: nothing was changed.\n'
        return 0
    else
        local report code=0
        report="$("$prefix/bin/xlfuncs" doctor 2>&1)" || code=$?
        printf '%s\n' "$report"
        [ "$code" = 0 ] || fail "xlfuncs doctor found the Python side broken (exit code $code): see its table above"
        if doctor_failed "$report"; then
            printf '\nInstalled, but xlfuncs doctor reports problems (FAIL above). Do what it says under "to fix:", then check again with:\n    %s doctor\n' "$prefix/bin/xlfuncs"
            return 0
        fi
    fi

    printf '\nDone. Start Excel: the xlfuncs tab is on the ribbon (worksheet functions need Excel on Windows).\n'
}

# Sourcing the file (the tests do) defines the functions without installing anything.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then main "$@"; fi
