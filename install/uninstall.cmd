@echo off
rem Double-click to remove xlfuncs from Excel (runs uninstall.ps1 next to this file).
powershell -NoProfile -ExecutionPolicy Bypass -File "%~dp0uninstall.ps1" %*
if errorlevel 1 (
  echo.
  echo The removal stopped: read the message above.
)
pause
