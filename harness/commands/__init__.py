"""One module per CLI command: ``HELP``, ``add_arguments(parser)`` and ``main(args) -> int``."""
