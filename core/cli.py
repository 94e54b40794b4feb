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
from core.guidance import METHOD_TABLE, METHODS, APGParams, GuidanceOptions

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


def add_method_args(ap: argparse.ArgumentParser) -> None:
    """--method and its parameters (APG's η, r, β), shared by the sample and sweep CLIs."""
    d = APGParams()
    ap.add_argument("--method", choices=METHODS, default="cfg",
                    help="guidance rule: " + "; ".join(f"{m.key} ({m.reference}" + (", DDIM only" if m.renoise_uncond else "")
                                                       + (f", w = its {m.weight}" if m.weight != "w" else "") + ")"
                                                       for m in METHOD_TABLE))
    ap.add_argument("--apg-eta", type=float, default=d.eta, help="APG η: weight of the parallel part")
    ap.add_argument("--apg-r", type=float, default=d.norm_bound, help="APG r: norm bound of the update (0 = none)")
    ap.add_argument("--apg-beta", type=float, default=d.momentum, help="APG β: momentum (negative = reverse)")
    ap.add_argument("--apg-clip-x", action="store_true", help="APG: form Δ from x̂ clipped to [−1, 1] (not the paper's)")


def method_options(a: argparse.Namespace) -> GuidanceOptions:
    """The GuidanceOptions of parsed --method arguments."""
    return GuidanceOptions(method=a.method, apg=APGParams(a.apg_eta, a.apg_r or None, a.apg_beta, a.apg_clip_x))
