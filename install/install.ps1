<#
.SYNOPSIS
  Install xlfuncs for Excel on Windows: Python environment, xlwings add-in, xlfuncs add-in.

.DESCRIPTION
  Each step says what it does and stops with a clear message when it fails:
    1. find Python 3.11 or later (not the Microsoft Store build)
    2. create a virtual environment in %LOCALAPPDATA%\xlfuncs\venv
    3. pip install xlfuncs (from this repository, or -Source)
    4. xlwings addin install (the xlwings add-in into XLSTART)
    5. write %USERPROFILE%\.xlwings\xlwings.conf: INTERPRETER_WIN and UDF MODULES = xlfuncs.udfs
       (other settings in the file are kept)
    6. copy workbooks\xlfuncs.xlam (the xlfuncs ribbon tab) into XLSTART
    7. xlfuncs doctor
  Close Excel before running it. Run it again after upgrading: it is safe to repeat.

.PARAMETER Source
  What to pip install: a folder with pyproject.toml (default: this repository) or a wheel.
.PARAMETER Prefix
  Where the virtual environment goes (default %LOCALAPPDATA%\xlfuncs\venv).
.PARAMETER DryRun
  Print the steps without doing them.
#>
param(
    [string]$Source = (Split-Path -Parent $PSScriptRoot),
    [string]$Prefix = (Join-Path $env:LOCALAPPDATA "xlfuncs\venv"),
    [switch]$DryRun
)
$ErrorActionPreference = "Stop"

function Step([string]$text) { Write-Host "`n==> $text" -ForegroundColor Cyan }
function Fail([string]$text) {
    Write-Host "xlfuncs install: $text" -ForegroundColor Red
    exit 1
}
function Run([string]$what, [scriptblock]$action) {
    if ($DryRun) { Write-Host "    (dry run) $what"; return }
    & $action
    if ($LASTEXITCODE -ne 0) { Fail "$what failed (exit code $LASTEXITCODE)" }
}

Step "1/7 Finding Python 3.11 or later"
$python = $null
$candidates = @(
    @{ Exe = "py"; Args = @("-3") },
    @{ Exe = "python"; Args = @() }
)
foreach ($c in $candidates) {
    if (-not (Get-Command $c.Exe -ErrorAction SilentlyContinue)) { continue }
    $pyArgs = $c.Args + @("-c", "import sys; print(sys.version_info[:2] >= (3, 11), sys.executable)")
    $info = & $c.Exe @pyArgs 2>$null
    if ($LASTEXITCODE -eq 0 -and "$info" -match "^True (.+)$") { $python = $Matches[1]; break }
}
if (-not $python) { Fail "no Python 3.11 or later found. Install it from https://www.python.org (tick 'Add python.exe to PATH') and run this again." }
if ($python -like "*WindowsApps*") { Fail "$python is the Microsoft Store Python, which cannot host the xlwings COM server. Install Python from https://www.python.org and run this again." }
Write-Host "    $python"

Step "2/7 Creating the environment in $Prefix"
Run "python -m venv" { & $python -m venv $Prefix }
$venvPython = Join-Path $Prefix "Scripts\python.exe"
$scripts = Join-Path $Prefix "Scripts"

Step "3/7 Installing xlfuncs from $Source"
Run "pip install" { & $venvPython -m pip install --upgrade pip --quiet; & $venvPython -m pip install --upgrade $Source }

Step "4/7 Installing the xlwings add-in (xlwings addin install)"
Run "xlwings addin install" { & (Join-Path $scripts "xlwings.exe") addin install }

Step "5/7 Writing $env:USERPROFILE\.xlwings\xlwings.conf"
$confDir = Join-Path $env:USERPROFILE ".xlwings"
$conf = Join-Path $confDir "xlwings.conf"
$settings = [ordered]@{}
if (Test-Path $conf) {
    foreach ($line in Get-Content $conf) {
        if ($line -match '^"([^"]+)","([^"]*)"') { $settings[$Matches[1]] = $Matches[2] }
    }
}
$settings["INTERPRETER_WIN"] = $venvPython
$settings["UDF MODULES"] = "xlfuncs.udfs"
if ($DryRun) {
    Write-Host "    (dry run) INTERPRETER_WIN = $venvPython; UDF MODULES = xlfuncs.udfs"
} else {
    New-Item -ItemType Directory -Force -Path $confDir | Out-Null
    # no blank lines: a blank line can stop the xlwings COM server from starting
    $lines = foreach ($key in $settings.Keys) { '"{0}","{1}"' -f $key, $settings[$key] }
    Set-Content -Path $conf -Value $lines -Encoding UTF8
}

Step "6/7 Installing the xlfuncs add-in (ribbon tab) into XLSTART"
$xlstart = Join-Path $env:APPDATA "Microsoft\Excel\XLSTART"
$addin = Join-Path $Source "workbooks\xlfuncs.xlam"
if (-not (Test-Path $addin)) { Fail "$addin is missing: run this script from a copy of the xlfuncs repository." }
if ($DryRun) { Write-Host "    (dry run) copy $addin to $xlstart" }
else {
    New-Item -ItemType Directory -Force -Path $xlstart | Out-Null
    try { Copy-Item $addin (Join-Path $xlstart "xlfuncs.xlam") -Force }
    catch { Fail "cannot copy the add-in into $xlstart (is Excel open? close it and run this again): $_" }
}

Step "7/7 Checking the installation (xlfuncs doctor)"
Run "xlfuncs doctor" { & (Join-Path $scripts "xlfuncs.exe") doctor }

Write-Host "`nDone. Start Excel: the xlfuncs tab is on the ribbon. Open workbooks\ImpliedCov.xlsm first." -ForegroundColor Green
