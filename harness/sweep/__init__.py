"""``harness sweep``: many runs of one task over cells, settings and seeds, with confidence intervals.

Read top-down:

* ``grid``: what a sweep is (:class:`~harness.sweep.grid.SweepSpec`) and its expansion into units, one
  unit per (cell, setting, seed), each with a stable identity and folder;
* ``unit``: running one unit (:func:`~harness.sweep.unit.run_unit`, a call of the core run function
  in whatever process the executor chose) and reading its state back from disk;
* ``folder``: the sweep folder (``sweep.json``, ``units/``, ``units.csv``), resume and refusal rules;
* ``order``: the order units start in: seed by seed, the longest first within a seed;
* ``engine``: handing the units that are not finished to an executor (``harness/executors/``), with a
  progress bar, one line per failure, and Ctrl-C that keeps every finished unit;
* ``stats`` and ``aggregate``: bootstrap and Wilson intervals, the paired comparison with a reference
  cell, ``sweep_summary.csv``;
* ``horizon``: the memory-horizon verdict (``docs/sweeps.md`` states the rule);
* ``files``: sweep files (TOML) for checked-in studies;
* ``plots``: figures and ``report.md`` for a sweep folder.
"""
