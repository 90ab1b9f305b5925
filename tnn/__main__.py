"""``python -m tnn`` is the ``tnn`` command."""

from tnn.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
