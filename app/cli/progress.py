"""Progress on the terminal for every headless command: one way, tqdm (rate, ETA, a clean last line).

``train`` and ``eval-proposals`` drive their own tqdm bars from their events; the commands whose models
functions report ``progress(fraction, message)`` (``synth``, ``evaluate``) use :class:`FractionBar`, and
loops over files (``detect``) use :func:`count_bar`. Bars are shown only on a terminal, so logs and pipes get
the results and the messages, not carriage-return noise.
"""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm


def show_progress(quiet: bool = False) -> bool:
    """A bar is worth drawing: not ``--quiet`` and stderr is a terminal."""
    return not quiet and sys.stderr.isatty()


def count_bar(prog: str, total: int, unit: str = "img", enabled: bool = True) -> tqdm:
    """A bar over ``total`` items; call ``update(1)`` per item and ``tqdm.write`` for messages between."""
    return tqdm(total=total, desc=prog, unit=unit, file=sys.stderr, disable=not enabled, dynamic_ncols=True,
                mininterval=0.2)


class FractionBar:
    """A ``progress(fraction, message)`` callback drawn as a percentage bar with the message beside it."""

    def __init__(self, prog: str, enabled: bool = True) -> None:
        self.bar = tqdm(total=100, desc=prog, unit="%", file=sys.stderr, disable=not enabled, dynamic_ncols=True,
                        mininterval=0.2, bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}{postfix}")

    def __call__(self, fraction: float, message: str = "") -> None:
        target = max(self.bar.n, min(100, round(100 * float(fraction))))
        if message:
            self.bar.set_postfix_str(message, refresh=False)
        self.bar.update(target - self.bar.n)

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> FractionBar:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


__all__ = ["FractionBar", "count_bar", "show_progress"]
