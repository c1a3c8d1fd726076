"""``slstm`` and ``mlstm``: the two cells of xLSTM (Beck et al. 2024, "xLSTM: Extended Long Short-Term Memory"), built
from the layers of the ``xlstm`` package (PyPI ``xlstm``, Apache-2.0) on its backends that run without CUDA.

* :mod:`cells.xlstm.slstm`: ``sLSTMLayer`` on the "vanilla" backend (a Python loop over time, CPU or GPU);
* :mod:`cells.xlstm.mlstm`: ``mLSTMLayer``'s parameters with the mLSTM recurrence computed chunkwise from a
  carried state (the package's own parallel form starts from zero and stops at its ``context_length``).

``xlstm`` depends on ``mlstm_kernels``, whose licence (NXAI Community License) asks companies above a revenue
threshold for a commercial licence; these cells never call it, but installing ``xlstm`` installs it. That is
why xlstm is an optional extra (``pip install 'rnn-harness[xlstm]'``); ``docs/modern-cells.md`` has the details.
"""

INSTALL = "pip install 'rnn-harness[xlstm]'"
