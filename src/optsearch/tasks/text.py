"""Real English text for the language task: the King James Bible from Debian's packages, as byte sequences."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import torch

from optsearch.tasks.data import DatasetMissing, Splits

BIBLE_PACKAGES = "bible-kjv bible-kjv-text"
BIBLE_DATA = Path("/usr/lib/bible.data")
BIBLE_COLUMNS = "80"
"""The width `bible` wraps verses at. It reads $COLUMNS, so without a fixed value the dataset (and every score on
it) would change with the terminal; 80 is what it prints with $COLUMNS unset."""
BYTES = 256
"""The language model predicts UTF-8 bytes: a fixed alphabet for any text (the KJV is plain ASCII)."""


def kjv_text(text_file: str | Path | None = None) -> str:
    """The whole KJV (4.3 MB) as printed by Debian's `bible` program, or the contents of `text_file` if given.

    The Debian data file is compressed in the program's own format, so the program itself must print it.
    """
    if text_file is not None:
        return Path(text_file).read_text(encoding="utf-8")
    program = shutil.which("bible")
    if program is None or not BIBLE_DATA.exists():
        raise DatasetMissing(f"the King James Bible text is missing: install the Debian packages {BIBLE_PACKAGES} "
                             f"(apt-get install -y {BIBLE_PACKAGES}), or pass a plain text file as data_dir")
    out = subprocess.run([program, "-p", str(BIBLE_DATA.parent), "gen1:1-rev22:21"], capture_output=True, text=True,
                         check=True, timeout=120, env={**os.environ, "COLUMNS": BIBLE_COLUMNS})
    return out.stdout


def byte_sequences(text: str, seq_len: int = 64, holdout_every: int = 20) -> Splits:
    """Non-overlapping chunks of `seq_len + 1` bytes: input = chunk[:-1], target = chunk[1:].

    Of every `holdout_every` consecutive chunks one goes to validation and one to test, so all three splits
    sample the whole text (every book of the Bible), not just its end.
    """
    ids = torch.from_numpy(np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64))
    n = len(ids) // (seq_len + 1)
    chunks = ids[: n * (seq_len + 1)].view(n, seq_len + 1)
    slot = torch.arange(n) % holdout_every
    parts = [chunks[mask] for mask in (slot >= 2, slot == 0, slot == 1)]
    return Splits(*(t for part in parts for t in (part[:, :-1], part[:, 1:])))


def load_kjv(text_file: str | Path | None = None, seq_len: int = 64, holdout_every: int = 20) -> Splits:
    return byte_sequences(kjv_text(text_file), seq_len, holdout_every)
