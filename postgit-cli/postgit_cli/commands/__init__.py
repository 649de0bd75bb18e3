"""One module per ``pst`` command (or group of sub-commands); ``postgit_cli.main`` wires them into the app."""
