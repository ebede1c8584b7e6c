"""The core never imports xlwings or requests (STYLE.md: the split cannot rot), nor hmmlearn.

hmmlearn has no wheels for current Python; the regime model must fit without it.
"""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('xlwings', 'requests', 'hmmlearn'):
            raise ImportError('blocked: ' + name)
        return None
sys.meta_path.insert(0, Block())
import xlfuncs.core
from xlfuncs.data.samples import sector_example
ex = sector_example()
res = xlfuncs.core.implied_correlation(ex.weights, ex.vols, ex.index_vol, ex.corr.to_numpy())
assert res.min_eigenvalue > -1e-10
import numpy as np
rng = np.random.default_rng(0)
x = np.vstack([rng.normal(0.01, 0.03, (80, 2)), rng.normal(-0.02, 0.07, (40, 2))])
fit = xlfuncs.core.fit_regime(x, 2, seed=0)
assert fit.n_iter >= 1 and np.isfinite(fit.log_likelihood)
assert not any(m.split('.')[0] in ('xlwings', 'requests', 'hmmlearn') for m in sys.modules)
print('ok')
"""


def test_core_imports_and_fits_without_xlwings_requests_or_hmmlearn():
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
