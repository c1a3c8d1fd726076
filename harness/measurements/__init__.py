"""What the harness measures: gradient norms through time (``gradflow``), throughput (``throughput``,
``bench``), a cell's numerical correctness (``correctness``), peak memory (``memory``), whether a timing is noisy
(``noise``), cost curves (``scaling``), and the machine it measured on (``environment``)."""
