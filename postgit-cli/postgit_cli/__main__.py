"""``python -m postgit_cli``: the same program as ``pst``."""

from postgit_cli.main import main

main()
