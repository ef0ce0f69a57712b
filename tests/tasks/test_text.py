import shutil

import pytest

from optsearch.tasks import text
from optsearch.tasks.data import DatasetMissing
from optsearch.tasks.text import byte_sequences, kjv_text

needs_bible = pytest.mark.skipif(shutil.which("bible") is None or not text.BIBLE_DATA.exists(),
                                 reason="Debian packages bible-kjv and bible-kjv-text are not installed")


def test_byte_sequences_targets_are_inputs_shifted_by_one():
    splits = byte_sequences("abcdefghij" * 100, seq_len=9)
    assert splits.x_train.shape[1] == 9
    assert (splits.x_train[:, 1:] == splits.y_train[:, :-1]).all()
    assert bytes(splits.x_train[0].tolist()) == b"abcdefghi"
    assert bytes(splits.y_train[0].tolist()) == b"bcdefghij"


def test_byte_sequences_hold_out_one_chunk_in_twenty_for_val_and_for_test():
    splits = byte_sequences("x" * (11 * 200), seq_len=10, holdout_every=20)
    assert splits.sizes == (180, 10, 10)


def test_missing_bible_names_the_debian_packages(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda _: None)
    with pytest.raises(DatasetMissing, match="bible-kjv bible-kjv-text"):
        kjv_text()


def test_a_text_file_replaces_the_bible(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("hello world", encoding="utf-8")
    assert kjv_text(path) == "hello world"


@needs_bible
def test_kjv_is_the_whole_bible():
    words = kjv_text()
    assert len(words) > 4_000_000
    assert "In the beginning God created the heaven and the earth." in words
    assert "The grace of our Lord Jesus Christ be with you all. Amen." in words


@needs_bible
def test_the_bible_does_not_change_with_the_terminal_width(monkeypatch):
    # `bible` wraps verses at $COLUMNS: a wide terminal once gave the language tasks another dataset
    monkeypatch.setenv("COLUMNS", "250")
    wide = kjv_text()
    monkeypatch.delenv("COLUMNS")
    assert kjv_text() == wide
    assert "  2 And the earth was without form, and void; and darkness was upon the face of\n" in wide  # 80 wide
