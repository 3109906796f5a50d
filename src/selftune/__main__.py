"""``python -m selftune``: the ``selftune`` command."""

from selftune.cli import main

if __name__ == "__main__":
    main()
