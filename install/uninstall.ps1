<#
.SYNOPSIS
  Remove xlfuncs from Excel on Windows: the xlfuncs add-in, its xlwings.conf settings and its
  virtual environment. The xlwings add-in is removed only with -RemoveXlwings (other tools may
  use it).
#>
param(
    [string]$Prefix = (Join-Path $env:LOCALAPPDATA "xlfuncs\venv"),
    [switch]$RemoveXlwings
)
$ErrorActionPreference = "Stop"
function Step([string]$text) { Write-Host "`n==> $text" -ForegroundColor Cyan }

Step "Removing the xlfuncs add-in from XLSTART"
$addin = Join-Path $env:APPDATA "Microsoft\Excel\XLSTART\xlfuncs.xlam"
if (Test-Path $addin) {
    try { Remove-Item $addin -Force } catch { Write-Host "cannot remove $addin (is Excel open?): $_" -ForegroundColor Red; exit 1 }
} else { Write-Host "    not installed" }

if ($RemoveXlwings) {
    Step "Removing the xlwings add-in (xlwings addin remove)"
    $xlwings = Join-Path $Prefix "Scripts\xlwings.exe"
    if (Test-Path $xlwings) { & $xlwings addin remove } else { Write-Host "    xlwings is not in $Prefix" }
}

Step "Removing xlfuncs.udfs from xlwings.conf"
$conf = Join-Path $env:USERPROFILE ".xlwings\xlwings.conf"
if (Test-Path $conf) {
    $kept = Get-Content $conf | Where-Object { $_ -notmatch '^"UDF MODULES","xlfuncs\.udfs"' -and $_ -notmatch [regex]::Escape($Prefix) }
    Set-Content -Path $conf -Value $kept -Encoding UTF8
}

Step "Removing the environment $Prefix"
if (Test-Path $Prefix) { Remove-Item $Prefix -Recurse -Force } else { Write-Host "    not there" }
Write-Host "`nxlfuncs is uninstalled." -ForegroundColor Green
