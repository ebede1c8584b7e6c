<#
.SYNOPSIS
  Install xlfuncs for Excel on Windows: Python environment, xlwings add-in, xlfuncs add-in.

.DESCRIPTION
  Each step says what it does and stops with a clear message when it fails:
    1. find the newest Python in the supported range (xlfuncs\supported_pythons.txt: the
       versions for which every dependency has binary wheels; a Microsoft Store Python is
       skipped); without one, install that range's newest for this user only (winget
       --scope user, else uv installed with any Python there is), or stop naming the
       version to get from python.org
    2. create a virtual environment in %LOCALAPPDATA%\xlfuncs\venv (or %SystemDrive%\xlfuncs\venv
       when that path has characters outside the Windows ANSI code page, which xlwings cannot
       load from); an environment made by another Python version is recreated
    3. pip install xlfuncs (from this repository, or -Source), dependencies from binary
       wheels only (--only-binary=:all:): nothing is compiled
    4. xlwings addin install (the xlwings add-in into XLSTART), then check it is there
    5. write %USERPROFILE%\.xlwings\xlwings.conf in the ANSI code page that xlwings' VBA reads:
       INTERPRETER_WIN, and xlfuncs.udfs added to UDF MODULES (other settings kept; the
       previous file is saved as xlwings.conf.bak)
    6. unblock the repository's workbooks (downloaded files carry the mark of the web, and
       Excel blocks their macros) and copy workbooks\xlfuncs.xlam (the xlfuncs ribbon tab)
       into XLSTART
    7. xlfuncs doctor (a FAIL in its table ends the install with a warning)
  Close Excel before running it. Run it again after upgrading: it is safe to repeat.

.PARAMETER Source
  What to pip install: a folder with pyproject.toml (default: this repository) or a wheel.
  The add-in is always taken from this repository's workbooks folder.
.PARAMETER Prefix
  Where the virtual environment goes (default %LOCALAPPDATA%\xlfuncs\venv). Only characters
  of the Windows ANSI code page.
.PARAMETER DryRun
  Print the steps without doing them.
#>
param(
    [string]$Source = "",
    [string]$Prefix = "",
    [switch]$DryRun
)
$ErrorActionPreference = "Stop"
# This file is ASCII on purpose: Windows PowerShell 5.1 reads a script without a BOM in the
# ANSI code page.

function Step([string]$text) { Write-Host "`n==> $text" -ForegroundColor Cyan }
function Note([string]$text) { Write-Host "    $text" -ForegroundColor Yellow }
function Fail([string]$text) {
    Write-Host "xlfuncs install: $text" -ForegroundColor Red
    exit 1
}
function Run([string]$what, [scriptblock]$action) {
    if ($DryRun) { Write-Host "    (dry run) $what"; return }
    # A native program's stderr (pip's warnings) must not end the script: the exit code decides.
    $ErrorActionPreference = "Continue"
    $global:LASTEXITCODE = 0
    & $action
    if ($LASTEXITCODE -ne 0) { Fail "$what failed (exit code $LASTEXITCODE)" }
}
function Invoke-Probe([string]$exe, [string[]]$argList) {
    # The lines a candidate Python prints, or $null when it fails. Windows PowerShell 5.1 turns
    # a redirected stderr line (the Store stub's "Python was not found") into an error, which
    # "Stop" makes fatal: probe with "Continue" (local to this function).
    $ErrorActionPreference = "Continue"
    try {
        $out = @(& $exe @argList 2>$null)
        if ($LASTEXITCODE -ne 0) { return $null }
        return ,$out
    } catch { return $null }
}
function Get-AnsiEncoding {
    # The code page xlwings' VBA reads xlwings.conf in (Open ... For Input) and LoadLibraryA
    # takes paths in. Windows PowerShell: [Text.Encoding]::Default; PowerShell 7's Default is
    # UTF-8, so ask the registry there.
    if ($PSVersionTable.PSEdition -ne "Core") { return [Text.Encoding]::Default }
    $acp = (Get-ItemProperty "HKLM:\SYSTEM\CurrentControlSet\Control\Nls\CodePage").ACP
    return [Text.Encoding]::GetEncoding([int]$acp)
}
$ansi = Get-AnsiEncoding
function Test-Ansi([string]$text) { return $ansi.GetString($ansi.GetBytes($text)) -ceq $text }
function Read-Conf([string]$path) {
    # The non-blank lines of xlwings.conf, read as xlwings' VBA reads them (a UTF-8 BOM that an
    # older installer wrote is recognised and dropped).
    if (-not (Test-Path -LiteralPath $path)) { return ,@() }
    $lines = @([IO.File]::ReadAllLines($path, $ansi))
    if ($lines.Count -gt 0) { $lines[0] = $lines[0] -replace '^(\uFEFF|\u00EF\u00BB\u00BF)', '' }
    return ,@($lines | Where-Object { $_.Trim() })
}
function Write-Conf([string]$path, [string[]]$lines) {
    # ANSI code page, no BOM, no blank lines (a blank line can stop the COM server from starting)
    if (Test-Path -LiteralPath $path) { Copy-Item -LiteralPath $path -Destination "$path.bak" -Force }
    $text = ($lines -join "`r`n") + "`r`n"
    [IO.File]::WriteAllBytes($path, $ansi.GetBytes($text))
}
$confLine = '^\s*"([^"]*)"\s*,\s*"([^"]*)"\s*$'
function Format-ConfLine([string]$key, [string]$value) { return '"{0}","{1}"' -f $key, $value }

function Read-SupportedRange([string]$path) {
    # @{ oldest = X; newest = Y } (minor versions of Python 3) from xlfuncs\supported_pythons.txt,
    # the one source of the range for both installers, xlfuncs doctor and the README; $null when
    # the file is missing or has no range.
    if (-not (Test-Path -LiteralPath $path)) { return $null }
    $range = @{}
    foreach ($line in [IO.File]::ReadAllLines($path)) {
        if ($line -match '^\s*(oldest|newest)\s*=\s*3\.(\d+)\s*$') { $range[$Matches[1]] = [int]$Matches[2] }
    }
    if ($range.Count -ne 2 -or $range.oldest -gt $range.newest) { return $null }
    return $range
}
function Install-Python([string]$version, $bootstrap) {
    # Install Python $version for this user only (no administrator rights) and return its
    # python.exe: winget --scope user (the python.org build), else uv (the uv on PATH, or one
    # installed into a small environment by $bootstrap, any Python 3.8 or later). Without
    # either, stop naming the version to get from python.org.
    Note "no Python $oldest to $newest is installed: installing Python $version for this user"
    $winget = Get-Command winget -CommandType Application -ErrorAction SilentlyContinue
    if ($winget) {
        Run "winget install --id Python.Python.$version --exact --scope user --silent --accept-package-agreements --accept-source-agreements" { & winget install --id "Python.Python.$version" --exact --scope user --silent --accept-package-agreements --accept-source-agreements }
        # where the python.org installer puts a per-user Python
        $exe = Join-Path $env:LOCALAPPDATA ("Programs\Python\Python" + ($version -replace '\.', '') + "\python.exe")
        if (-not $DryRun -and -not (Test-Path -LiteralPath $exe)) {
            Fail "winget did not put Python $version in $exe. Install Python $version from https://www.python.org/downloads/ (tick 'Add python.exe to PATH') and run this again."
        }
        return $exe
    }
    $uv = Get-Command uv -CommandType Application -ErrorAction SilentlyContinue | Select-Object -First 1
    if ($uv) {
        $uvExe = $uv.Path
    } elseif ($bootstrap) {
        $tools = Join-Path $env:LOCALAPPDATA "xlfuncs\uv"
        $uvExe = Join-Path $tools "Scripts\uv.exe"
        $toolsPython = Join-Path $tools "Scripts\python.exe"
        Run "$($bootstrap.Where) -m venv $tools" { & $bootstrap.Exe @($bootstrap.Args + @("-m", "venv", $tools)) }
        Run "$toolsPython -m pip install --only-binary=:all: uv" { & $toolsPython -m pip install --only-binary=:all: uv }
    } else {
        Fail "no Python $oldest to $newest, no winget and no Python to install one with: install Python $version from https://www.python.org/downloads/ (tick 'Add python.exe to PATH') and run this again."
    }
    Run "$uvExe python install $version" { & $uvExe python install $version }
    if ($DryRun) {
        Write-Host "    (dry run) $uvExe python find $version"
        return "`$($uvExe python find $version)"
    }
    $out = Invoke-Probe $uvExe @("python", "find", $version)
    if (-not $out) { Fail "uv installed Python $version but cannot find it: install Python $version from https://www.python.org/downloads/ and run this again." }
    return "$($out[0])".Trim()
}

$repo = Split-Path -Parent $PSScriptRoot
if (-not $Source) { $Source = $repo }
if (-not (Test-Path -LiteralPath $Source)) { Fail "-Source $Source does not exist." }
$Source = (Resolve-Path -LiteralPath $Source).ProviderPath
if (-not $Prefix) {
    $Prefix = Join-Path $env:LOCALAPPDATA "xlfuncs\venv"
    if (-not (Test-Ansi $Prefix)) {
        $fallback = Join-Path $env:SystemDrive "xlfuncs\venv"
        Note "$Prefix has characters outside the Windows ANSI code page, and xlwings loads Python"
        Note "from a path in that code page only (LoadLibraryA): using $fallback instead."
        $Prefix = $fallback
    }
} else {
    $Prefix = $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($Prefix)
    if (-not (Test-Ansi $Prefix)) {
        Fail "-Prefix $Prefix has characters outside the Windows ANSI code page, from which xlwings cannot load Python: choose another folder (for example $env:SystemDrive\xlfuncs\venv)."
    }
}
$venvPython = Join-Path $Prefix "Scripts\python.exe"
$scripts = Join-Path $Prefix "Scripts"
$xlstart = Join-Path $env:APPDATA "Microsoft\Excel\XLSTART"
$addin = Join-Path $repo "workbooks\xlfuncs.xlam"

$rangeFile = Join-Path $repo "xlfuncs\supported_pythons.txt"
$range = Read-SupportedRange $rangeFile
if (-not $range) { Fail "$rangeFile is missing or unreadable: run this script from a copy of the xlfuncs repository." }
$oldest = "3.$($range.oldest)"
$newest = "3.$($range.newest)"
Step "1/7 Finding Python $oldest to $newest (the versions xlfuncs installs on without compiling)"
$candidates = @(
    @{ Exe = "py"; Args = @("-3") },
    @{ Exe = "python"; Args = @() },
    @{ Exe = "python3"; Args = @() }
)
for ($minor = $range.newest; $minor -ge $range.oldest; $minor--) {
    $candidates += @{ Exe = "py"; Args = @("-3.$minor") }
}
$probe = "import sys; v = sys.version_info; print(v[0], v[1]); print(sys.executable)"
$found = $null
$bootstrap = $null
$passed = @()
foreach ($c in $candidates) {
    foreach ($cmd in @(Get-Command $c.Exe -CommandType Application -All -ErrorAction SilentlyContinue)) {
        $exe = $cmd.Path
        if ($exe -like "*\WindowsApps\*") { $passed += "$exe (Microsoft Store)"; continue }
        $info = Invoke-Probe $exe ($c.Args + @("-c", $probe))
        if (-not $info -or $info.Count -lt 2) { continue }
        if (-not ("$($info[0])" -match '^(\d+) (\d+)$')) { continue }
        $major = [int]$Matches[1]
        $minor = [int]$Matches[2]
        $version = "$major.$minor"
        $where = "$($info[1])".Trim()
        if ($where -like "*\WindowsApps\*") { $passed += "$where (Microsoft Store)"; continue }
        $candidate = @{ Exe = $exe; Args = $c.Args; Version = $version; Minor = $minor; Where = $where }
        if ($major -ne 3 -or $minor -lt $range.oldest -or $minor -gt $range.newest) {
            $passed += "$where (Python $version)"
            # any Python 3.8 or later can install uv
            if ($major -eq 3 -and $minor -ge 8 -and -not $bootstrap) { $bootstrap = $candidate }
            continue
        }
        if (-not $found -or $minor -gt $found.Minor) { $found = $candidate }
    }
}
if ($passed) { Write-Host "    passed over: $(($passed | Select-Object -Unique) -join '; ')" }
if (-not $found) {
    $exe = Install-Python $newest $bootstrap
    $found = @{ Exe = $exe; Args = @(); Version = $newest; Where = $exe }
}
Write-Host "    Python $($found.Version): $($found.Where)"

Step "2/7 Creating the environment in $Prefix"
$venvArgs = @("-m", "venv")
$cfg = Join-Path $Prefix "pyvenv.cfg"
if (Test-Path -LiteralPath $cfg) {
    $had = $null
    foreach ($line in [IO.File]::ReadAllLines($cfg)) {
        if ($line -match '^\s*version(_info)?\s*=\s*(\d+)\.(\d+)') { $had = "$($Matches[2]).$($Matches[3])"; break }
    }
    if ($had -ne $found.Version) {
        if (-not $had) { $had = "of an unknown version" }
        Note "it was made with Python ${had}: recreating it with Python $($found.Version) (--clear)"
        $venvArgs += "--clear"
    } elseif (-not (Test-Path -LiteralPath $venvPython)) {
        Note "it is incomplete: recreating it (--clear)"
        $venvArgs += "--clear"
    } else {
        Write-Host "    already there (Python $had): updating it"
    }
} elseif ((Test-Path -LiteralPath $Prefix) -and @(Get-ChildItem -LiteralPath $Prefix -Force).Count -gt 0) {
    Fail "$Prefix exists but is not a Python environment (no pyvenv.cfg): move it away or choose another -Prefix."
}
# The candidate itself makes the environment: a path printed by Python would come back through
# the console code page, which mangles non-ASCII characters.
Run "python -m venv $Prefix (if Excel is open, close it: it may be using this environment)" { & $found.Exe @($found.Args + $venvArgs + @($Prefix)) }

Step "3/7 Installing xlfuncs from $Source"
Run "pip install --upgrade pip" { & $venvPython -m pip install --upgrade pip --quiet }
# binary wheels only for the dependencies (never a compiler); a folder of xlfuncs itself is still
# built, which is pure Python
Run "pip install --upgrade --only-binary=:all: $Source" { & $venvPython -m pip install --upgrade --only-binary=:all: $Source }

Step "4/7 Installing the xlwings add-in (xlwings addin install)"
Run "xlwings addin install" { & (Join-Path $scripts "xlwings.exe") addin install }
# xlwings catches its own errors (no Excel, Excel open, ...) and still exits 0: check the file.
$xlwingsAddin = Join-Path $xlstart "xlwings.xlam"
$shipped = Join-Path $Prefix "Lib\site-packages\xlwings\addin\xlwings.xlam"
if ($DryRun) {
    Write-Host "    (dry run) check that $xlwingsAddin is the add-in of the xlwings just installed"
} elseif (-not (Test-Path -LiteralPath $xlwingsAddin)) {
    Fail "the xlwings add-in is not in $xlstart, so xlwings addin install did not work (its message is above). Is Excel installed? Close Excel and run this again."
} elseif ((Test-Path -LiteralPath $shipped) -and ((Get-FileHash -LiteralPath $xlwingsAddin).Hash -ne (Get-FileHash -LiteralPath $shipped).Hash)) {
    Fail "$xlwingsAddin is not the add-in of the xlwings just installed, so xlwings addin install did not replace it (its message is above). Close Excel and run this again."
} else {
    Write-Host "    $xlwingsAddin"
}

$confDir = Join-Path $env:USERPROFILE ".xlwings"
$conf = Join-Path $confDir "xlwings.conf"
Step "5/7 Writing $conf"
if (-not (Test-Ansi $conf)) {
    Note "$env:USERPROFILE has characters outside the Windows ANSI code page: xlwings' VBA may not"
    Note "find $conf. If the xlfuncs buttons say they cannot find Python, ask IT for an account"
    Note "whose user folder name has only characters of that code page."
}
$out = New-Object System.Collections.Generic.List[string]
$setInterpreter = $false
$setModules = $false
foreach ($line in (Read-Conf $conf)) {
    if ($line -match $confLine) {
        $key = $Matches[1]
        $value = $Matches[2]
        if ($key -eq "INTERPRETER_WIN") {
            # xlwings uses the first line with a key (case-insensitive): keep one
            if (-not $setInterpreter) { $out.Add((Format-ConfLine $key $venvPython)); $setInterpreter = $true }
            continue
        }
        if ($key -eq "UDF MODULES") {
            if (-not $setModules) {
                # a ;-separated list: add xlfuncs.udfs, keep the others
                $modules = @($value -split ";" | ForEach-Object { $_.Trim() } | Where-Object { $_ })
                if ($modules -notcontains "xlfuncs.udfs") { $modules += "xlfuncs.udfs" }
                $out.Add((Format-ConfLine $key ($modules -join ";")))
                $setModules = $true
            }
            continue
        }
    }
    $out.Add($line)
}
if (-not $setInterpreter) { $out.Add((Format-ConfLine "INTERPRETER_WIN" $venvPython)) }
if (-not $setModules) { $out.Add((Format-ConfLine "UDF MODULES" "xlfuncs.udfs")) }
if ($DryRun) {
    Write-Host "    (dry run) write (ANSI code page, no BOM; the old file as xlwings.conf.bak):"
    foreach ($line in $out) { Write-Host "      $line" }
} else {
    New-Item -ItemType Directory -Force -Path $confDir | Out-Null
    Write-Conf $conf $out.ToArray()
    foreach ($line in $out) { Write-Host "    $line" }
}

Step "6/7 Unblocking the workbooks and installing the xlfuncs add-in (ribbon tab) into XLSTART"
if (-not (Test-Path -LiteralPath $addin)) { Fail "$addin is missing: run this script from a copy of the xlfuncs repository." }
$workbooks = Join-Path $repo "workbooks"
if ($DryRun) {
    Write-Host "    (dry run) Unblock-File $workbooks\* (the mark of the web of a downloaded ZIP)"
    Write-Host "    (dry run) copy $addin to $xlstart"
} else {
    try { Get-ChildItem -LiteralPath $workbooks -Recurse -File | Unblock-File }
    catch { Note "could not unblock every file in ${workbooks}: $_ (right-click a blocked workbook, Properties, tick Unblock)" }
    New-Item -ItemType Directory -Force -Path $xlstart | Out-Null
    $target = Join-Path $xlstart "xlfuncs.xlam"
    try { Copy-Item -LiteralPath $addin -Destination $target -Force }
    catch { Fail "cannot copy the add-in into $xlstart (is Excel open? close it and run this again): $_" }
    try { Unblock-File -LiteralPath $target } catch { Note "could not unblock ${target}: $_" }
    Write-Host "    $target"
}

Step "7/7 Checking the installation (xlfuncs doctor)"
$doctorFailed = $false
if ($DryRun) {
    Write-Host "    (dry run) xlfuncs doctor"
    Write-Host "`nDry run: nothing was changed."
    exit 0
} else {
    $ErrorActionPreference = "Continue"
    $global:LASTEXITCODE = 0
    $report = @(& (Join-Path $scripts "xlfuncs.exe") doctor 2>&1 | ForEach-Object { $text = "$_"; Write-Host $text; $text })
    $doctorCode = $LASTEXITCODE
    $ErrorActionPreference = "Stop"
    if ($doctorCode -ne 0) { Fail "xlfuncs doctor found the Python side broken (exit code $doctorCode): see its table above." }
    $doctorFailed = @($report | Where-Object { $_ -cmatch '\sFAIL(\s|$)' }).Count -gt 0
}

if ($doctorFailed) {
    Write-Host "`nInstalled, but xlfuncs doctor reports problems (FAIL above). Do what it says under 'to fix:', then check again with:" -ForegroundColor Yellow
    Write-Host "    `"$(Join-Path $scripts 'xlfuncs.exe')`" doctor" -ForegroundColor Yellow
    exit 0
}
Write-Host "`nDone. Start Excel: the xlfuncs tab is on the ribbon. Open workbooks\ImpliedCov.xlsm first." -ForegroundColor Green
