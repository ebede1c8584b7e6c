@echo off
rem Double-click to install xlfuncs for Excel (runs install.ps1 next to this file).
powershell -NoProfile -ExecutionPolicy Bypass -File "%~dp0install.ps1" %*
if errorlevel 1 (
  echo.
  echo The installation stopped: read the message above.
)
pause
