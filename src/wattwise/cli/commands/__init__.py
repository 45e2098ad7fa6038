"""One module per verb of the ``wattwise`` command."""
