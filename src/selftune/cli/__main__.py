"""``python -m selftune.cli``: the ``selftune`` command."""

from selftune.cli import main

if __name__ == "__main__":  # pragma: no cover
    main()
