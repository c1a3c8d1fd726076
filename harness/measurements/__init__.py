"""What the harness measures: gradient norms through time (``gradflow``), throughput (``throughput``,
``bench``), a cell's numerical correctness (``correctness``), and the machine it measured on (``environment``)."""
