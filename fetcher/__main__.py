"""`python -m fetcher` runs the command line."""

from __future__ import annotations

from fetcher.cli import main

if __name__ == "__main__":
    main()
