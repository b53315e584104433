"""A tqdm bar driven by the engine's ``progress(fraction, message)`` callbacks."""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

from tqdm import tqdm

from ..progress import ProgressCallback


@contextmanager
def progress_bar(title: str) -> Iterator[ProgressCallback]:
    """Yield a callback that moves a 0..100 % bar on stderr."""
    with tqdm(total=100, desc=title, unit="%", bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}") as bar:
        last = [0.0]

        def report(fraction: float, message: str) -> None:
            now = time.monotonic()
            if now - last[0] < 0.2 and fraction < 1.0:  # redraw five times a second at most
                return
            last[0] = now
            bar.n = round(100 * fraction, 1)
            bar.set_postfix_str(message, refresh=False)
            bar.refresh()

        yield report
