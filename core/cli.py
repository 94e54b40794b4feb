"""What every command-line entry point shares: bad input answered with one line, `error: …`, and exit status 2.

argparse's own errors (an unknown flag, a non-number) take the same one-line form. Library code raises ValueError,
WeightsError (a missing or corrupt asset, an unknown model) or FileNotFoundError for input it cannot use; run() turns
those into that line. Any other exception is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from core.checkpoint import WeightsError

USER_ERRORS = (ValueError, WeightsError, FileNotFoundError)


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: `error: …` on stderr, exit 2."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"error: {message} (see --help)\n")


def run(main: Callable[[list[str] | None], object], argv: list[str] | None = None) -> None:
    """Run a CLI's main; input it cannot use ends the process with `error: …` and exit 2."""
    try:
        main(argv)
    except USER_ERRORS as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
