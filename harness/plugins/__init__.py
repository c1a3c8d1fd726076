"""Plugins in use: finding them (``registry``, ``provenance``), checking what they register (``checks``),
building a cell and joining it to a task's head (``model``), and the conformance kit (``testing``)."""
