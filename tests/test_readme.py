"""The README's Quick start: two commands, the second is CI's, the first runs the demo."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quick_start() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert block, "the Quick start has no bash code block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_quick_start_is_two_commands_and_ci_runs_the_second():
    setup_demo, setup_test = quick_start()
    assert setup_demo.startswith("python3 -m venv .venv") and setup_demo.endswith("xlfuncs demo")
    assert "pip install -e ." in setup_demo
    assert setup_test.startswith("python3 -m venv .venv") and "pytest" in setup_test
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert setup_test in ci.splitlines()


def test_the_demo_command_runs_as_installed(tmp_path):
    """The console script of this environment, from a fresh folder, with no arguments."""
    script = Path(sys.executable).parent / "xlfuncs"
    assert script.is_file(), "pip install -e . creates the xlfuncs command"
    done = subprocess.run([str(script), "demo"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "== 3. Factor-model backtest" in done.stdout
    assert (tmp_path / "xlfuncs-demo" / "xlfuncs-demo.xlsx").is_file()
