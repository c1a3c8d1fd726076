"""Built-in cells, one module per cell. Each registers itself through the
``register_cells`` hook and the ``harness`` entry-point group, as any
third-party plugin would."""
