"""One run: its settings (``config``), the training of every cell on the same data (``runner``), and the run
folder it writes (``execute``: ``run`` and ``execute``, the one entry point for the CLI, sweeps and notebooks)."""
