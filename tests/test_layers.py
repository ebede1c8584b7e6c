"""The core never imports xlwings or requests (STYLE.md: the split cannot rot)."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('xlwings', 'requests'):
            raise ImportError('blocked: ' + name)
        return None
sys.meta_path.insert(0, Block())
import xlfuncs.core
from xlfuncs.data.samples import sector_example
ex = sector_example()
res = xlfuncs.core.implied_correlation(ex.weights, ex.vols, ex.index_vol, ex.corr.to_numpy())
assert res.min_eigenvalue > -1e-10
assert not any(m.split('.')[0] in ('xlwings', 'requests') for m in sys.modules)
print('ok')
"""


def test_core_imports_without_xlwings_or_requests():
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
