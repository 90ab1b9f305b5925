"""The ``tnn`` command line (also ``python -m tnn``); see :func:`tnn.cli.main.main`."""
