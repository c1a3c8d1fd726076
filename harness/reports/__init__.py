"""Results on disk and in words: the summary's columns (``columns``), run folders and tables (``results``),
the printed summary (``summary``), figures (``plots``; ``scaling_plots`` for ``bench --scaling``), ``report.md``
(``report``), tables across runs (``compare``) and the regression gate (``regression``)."""
