<#
.SYNOPSIS
  Remove xlfuncs from Excel on Windows: the xlfuncs add-in, its xlwings.conf settings and its
  virtual environment. The xlwings add-in is removed only with -RemoveXlwings (other tools may
  use it).

.DESCRIPTION
  xlwings.conf loses xlfuncs.udfs from UDF MODULES (other modules stay) and INTERPRETER_WIN
  when it points into the environment; the previous file is saved as xlwings.conf.bak. The
  environment folder is deleted only when it is a Python environment (has pyvenv.cfg). So is
  %LOCALAPPDATA%\xlfuncs\uv, the small environment holding uv when the installer had to
  install Python with it; that Python stays, as any other Python of this user.

.PARAMETER Prefix
  The environment install.ps1 made (default: where install.ps1 puts it).
.PARAMETER RemoveXlwings
  Also run xlwings addin remove.
#>
param(
    [string]$Prefix = "",
    [switch]$RemoveXlwings
)
$ErrorActionPreference = "Stop"
# ASCII on purpose: Windows PowerShell 5.1 reads a script without a BOM in the ANSI code page.
function Step([string]$text) { Write-Host "`n==> $text" -ForegroundColor Cyan }
function Get-AnsiEncoding {
    # the code page xlwings' VBA reads xlwings.conf in (see install.ps1)
    if ($PSVersionTable.PSEdition -ne "Core") { return [Text.Encoding]::Default }
    $acp = (Get-ItemProperty "HKLM:\SYSTEM\CurrentControlSet\Control\Nls\CodePage").ACP
    return [Text.Encoding]::GetEncoding([int]$acp)
}
$ansi = Get-AnsiEncoding
function Test-Ansi([string]$text) { return $ansi.GetString($ansi.GetBytes($text)) -ceq $text }

if (-not $Prefix) {
    # the same default as install.ps1
    $Prefix = Join-Path $env:LOCALAPPDATA "xlfuncs\venv"
    if (-not (Test-Ansi $Prefix)) { $Prefix = Join-Path $env:SystemDrive "xlfuncs\venv" }
} else {
    $Prefix = $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($Prefix)
}
$venvPython = Join-Path $Prefix "Scripts\python.exe"

Step "Removing the xlfuncs add-in from XLSTART"
$addin = Join-Path $env:APPDATA "Microsoft\Excel\XLSTART\xlfuncs.xlam"
if (Test-Path -LiteralPath $addin) {
    try { Remove-Item -LiteralPath $addin -Force } catch { Write-Host "cannot remove $addin (is Excel open?): $_" -ForegroundColor Red; exit 1 }
    Write-Host "    removed $addin"
} else { Write-Host "    not installed" }

if ($RemoveXlwings) {
    Step "Removing the xlwings add-in (xlwings addin remove)"
    $xlwings = Join-Path $Prefix "Scripts\xlwings.exe"
    if (Test-Path -LiteralPath $xlwings) {
        $ErrorActionPreference = "Continue"
        & $xlwings addin remove
        $ErrorActionPreference = "Stop"
    } else { Write-Host "    xlwings is not in $Prefix" }
}

$conf = Join-Path $env:USERPROFILE ".xlwings\xlwings.conf"
Step "Removing xlfuncs' settings from $conf"
if (Test-Path -LiteralPath $conf) {
    # read and written as xlwings' VBA reads it: ANSI code page, no BOM, no blank lines
    $lines = @([IO.File]::ReadAllLines($conf, $ansi))
    if ($lines.Count -gt 0) { $lines[0] = $lines[0] -replace '^(\uFEFF|\u00EF\u00BB\u00BF)', '' }
    $kept = New-Object System.Collections.Generic.List[string]
    foreach ($line in $lines) {
        if (-not $line.Trim()) { continue }
        if ($line -match '^\s*"([^"]*)"\s*,\s*"([^"]*)"\s*$') {
            $key = $Matches[1]
            $value = $Matches[2]
            if ($key -eq "INTERPRETER_WIN" -and $value -eq $venvPython) {
                Write-Host "    removed INTERPRETER_WIN ($value)"
                continue
            }
            if ($key -eq "UDF MODULES") {
                # only the xlfuncs.udfs entry of the ;-separated list
                $modules = @($value -split ";" | ForEach-Object { $_.Trim() } | Where-Object { $_ -and $_ -ne "xlfuncs.udfs" })
                if ($modules.Count -eq 0) { Write-Host "    removed UDF MODULES (it held only xlfuncs.udfs)"; continue }
                $line = '"{0}","{1}"' -f $key, ($modules -join ";")
            }
        }
        $kept.Add($line)
    }
    Copy-Item -LiteralPath $conf -Destination "$conf.bak" -Force
    $text = ""
    if ($kept.Count -gt 0) { $text = ($kept.ToArray() -join "`r`n") + "`r`n" }
    [IO.File]::WriteAllBytes($conf, $ansi.GetBytes($text))
    Write-Host "    the previous file is $conf.bak"
} else { Write-Host "    no $conf" }

$tools = Join-Path $env:LOCALAPPDATA "xlfuncs\uv"
if (Test-Path -LiteralPath (Join-Path $tools "pyvenv.cfg")) {
    try { Remove-Item -LiteralPath $tools -Recurse -Force }
    catch { Write-Host "    could not remove ${tools}: $_" -ForegroundColor Yellow }
}

Step "Removing the environment $Prefix"
if (Test-Path -LiteralPath (Join-Path $Prefix "pyvenv.cfg")) {
    try { Remove-Item -LiteralPath $Prefix -Recurse -Force }
    catch { Write-Host "cannot remove $Prefix (is Excel open? close it and run this again): $_" -ForegroundColor Red; exit 1 }
    $parent = Split-Path -Parent $Prefix
    if ((Split-Path -Leaf $parent) -eq "xlfuncs" -and @(Get-ChildItem -LiteralPath $parent -Force).Count -eq 0) {
        Remove-Item -LiteralPath $parent -Force
    }
    Write-Host "    removed"
} elseif (Test-Path -LiteralPath $Prefix) {
    Write-Host "    left in place: $Prefix has no pyvenv.cfg, so it is not a Python environment this installer made" -ForegroundColor Yellow
} else { Write-Host "    not there" }
Write-Host "`nxlfuncs is uninstalled." -ForegroundColor Green
