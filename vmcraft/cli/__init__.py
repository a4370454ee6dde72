"""The ``vmcraft`` command: one module per subcommand, each thin over the handle."""
