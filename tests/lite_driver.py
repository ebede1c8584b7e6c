"""Run a generated xlwings Lite main.py as Lite would, under Pyodide's constraints.

``python tests/lite_driver.py JOB.json`` loads ``job["main"]`` with xlwings'
Office.js machinery (``XLWINGS_ON_SERVER=true``), after
:func:`lite_support.install_guard` unless ``job["guard"]`` is false, and prints
one JSON object: the custom-function metadata (``custom_functions_meta``), the
result of each Office.js-shaped call (``custom_functions_call``), the actions
each script queued on its book (``custom_scripts_call`` on ``xw.Book(json=...)``)
and, with ``job["probe"]``, what the guard refused.
"""

import asyncio
import importlib.util
import json
import sys
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import lite_support


def _probe() -> dict:
    refused = {}
    for name in ("hmmlearn", "win32com.client", "pyopenvba"):
        try:
            __import__(name)
            refused[name] = False
        except ImportError:
            refused[name] = True
    from concurrent.futures import ThreadPoolExecutor

    def start_pool():
        with ThreadPoolExecutor(2) as pool:
            pool.submit(print).result()

    import subprocess

    def start_process_pool():
        from concurrent.futures import ProcessPoolExecutor

        ProcessPoolExecutor(2)

    def start_process():
        import multiprocessing

        multiprocessing.Process(target=print).start()

    for name, run in (("thread pool", start_pool), ("process pool", start_process_pool),
                      ("multiprocessing", start_process),
                      ("subprocess", lambda: subprocess.run(["true"], check=False))):
        try:
            run()
            refused[name] = False
        except RuntimeError:
            refused[name] = True
    return refused


async def main(job: dict) -> dict:
    out = {}
    if job.get("probe"):
        out["probe"] = _probe()
    # the browser's fetch, as Pyodide exposes it (pyodide.http.pyfetch)
    pyodide = types.ModuleType("pyodide")
    pyodide.http = types.ModuleType("pyodide.http")
    pyodide.http.pyfetch = lite_support.browser_fetch
    sys.modules.update({"pyodide": pyodide, "pyodide.http": pyodide.http})

    spec = importlib.util.spec_from_file_location("lite_main", job["main"])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    import xlwings as xw
    from xlwings.server import custom_functions_call, custom_functions_meta, custom_scripts_call

    out["meta"] = custom_functions_meta(module)
    out["calls"] = []
    for call in job.get("calls", []):
        data = {"func_name": call["func_name"], "args": call["args"], "version": xw.__version__,
                "client": "Office.js", "runtime": "1.4", "culture_info_name": "en-US",
                "date_format": "yyyy-mm-dd", "caller_address": "Sheet1!A1"}
        out["calls"].append(await custom_functions_call(data, module))
    out["scripts"] = []
    for run in job.get("scripts", []):
        book = xw.Book(json=run["book"])
        await custom_scripts_call(module, run["name"], typehint_to_value={xw.Book: book})
        out["scripts"].append(book.json()["actions"])
    return out


if __name__ == "__main__":
    job = json.loads(Path(sys.argv[1]).read_text())
    if job.get("guard", True):
        lite_support.install_guard()
    result = asyncio.run(main(job))
    sys.stdout.write("\n@@RESULT@@" + json.dumps(result, default=repr))
