"""A report page as plain data (sections of text, images, tables, code), rendered once to HTML and once to Markdown.

The HTML embeds every image as a base64 data URI, so `index.html` is one self-contained file that opens from
file:// anywhere; the same PNGs are also written next to it for `report.md` to link.
"""

from __future__ import annotations

import base64
import html
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Image:
    """A PNG; `name` is its file name in the output folder."""

    name: str
    png: bytes
    alt: str
    caption: str = ""


@dataclass
class Code:
    text: str


Cell = str | Code | Image | list["Cell"]  # a list stacks several things in one table cell


@dataclass
class Table:
    headers: list[str]
    rows: list[list[Cell]]


Block = str | Image | Table | Code  # a str is a paragraph


def plain(value: object) -> str:
    """A setting's value as a reader writes it: a name without JSON's quotes, a list as its items."""
    if isinstance(value, list | tuple):
        return ", ".join(map(plain, value))
    if isinstance(value, dict):
        return ", ".join(f"{key}: {plain(v)}" for key, v in value.items())
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Page:
    title: str
    sections: list[Section] = field(default_factory=list)

    def images(self) -> list[Image]:
        found: list[Image] = []

        def visit(item: object) -> None:
            if isinstance(item, Image):
                found.append(item)
            elif isinstance(item, Table):
                for row in item.rows:
                    visit(row)
            elif isinstance(item, list):
                for x in item:
                    visit(x)

        for section in self.sections:
            visit(section.blocks)
        return found


REPORT_MARK = ".optsearch-report"
"""The file that marks a folder as an optsearch report, which a later report may replace whole."""


class ReportFolderError(ValueError):
    """An output folder a report must not take over (it holds files that are not an earlier report)."""


def check_report_folder(out_dir: str | Path) -> Path:
    """`out_dir` as a Path if a report may be written there: a new folder, an empty one, or an earlier report's
    (marked by `REPORT_MARK`). Anything else is refused, since a report replaces its folder whole."""
    out = Path(out_dir)
    allowed = "allowed: a new folder, an empty one or an earlier optsearch report's"
    if out.exists() and not out.is_dir():
        raise ReportFolderError(f"{out} is a file; {allowed}")
    if out.is_dir() and not (out / REPORT_MARK).is_file():
        names = sorted(p.name for p in out.iterdir())
        if names:
            listed = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            raise ReportFolderError(f"{out} holds files that are not an optsearch report ({listed}); {allowed}")
    return out


def write_page(page: Page, out_dir: str | Path) -> Path:
    """Write `index.html`, `report.md` and the PNGs as the folder `out_dir`; return the HTML's path.

    The files are written into a new folder beside `out_dir`, which then replaces it: an earlier report there goes
    whole (no stale plots beside new ones), and a failed write leaves it as it was.
    """
    out = check_report_folder(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    new = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    try:
        for image in page.images():
            (new / image.name).write_bytes(image.png)
        (new / "report.md").write_text(to_markdown(page), encoding="utf-8")
        (new / "index.html").write_text(to_html(page), encoding="utf-8")
        (new / REPORT_MARK).write_text("written by optsearch report; the next report written here replaces this "
                                       "folder\n", encoding="utf-8")
        _swap_in(new, out)
    finally:
        shutil.rmtree(new, ignore_errors=True)  # gone already once swapped in
    return out / "index.html"


def _swap_in(new: Path, out: Path) -> None:
    """Rename `new` to `out`; an existing `out` is moved aside first (and back if the rename fails), then removed."""
    if not out.exists():
        new.rename(out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    out.rename(old)  # onto the empty folder just made: POSIX rename replaces an empty directory
    try:
        new.rename(out)
    except BaseException:
        old.rename(out)
        raise
    shutil.rmtree(old)


# --- HTML ------------------------------------------------------------------------------------------
STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { border-bottom: 2px solid #ddd; padding-bottom: .3em; }
h2 { margin-top: 1.6em; border-bottom: 1px solid #eee; }
table { border-collapse: collapse; margin: 1em 0; font-size: 14px; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: middle; }
th { background: #f4f4f4; }
tr:nth-child(even) td { background: #fafafa; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 14px; }
code { background: #f4f4f4; padding: 1px 4px; border-radius: 3px; font-size: 13px; }
pre { background: #f4f4f4; padding: .8em; overflow-x: auto; }
td img { display: block; }
"""


def to_html(page: Page) -> str:
    body = [f"<h1>{_esc(page.title)}</h1>"]
    for section in page.sections:
        body.append(f"<h2>{_esc(section.title)}</h2>")
        body.extend(_html_block(b) for b in section.blocks)
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{_esc(page.title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")


def _html_block(block: Block) -> str:
    if isinstance(block, Image):
        caption = f"<figcaption>{_esc(block.caption)}</figcaption>" if block.caption else ""
        return f"<figure>{_html_img(block)}{caption}</figure>"
    if isinstance(block, Table):
        head = "".join(f"<th>{_esc(h)}</th>" for h in block.headers)
        rows = "".join("<tr>" + "".join(f"<td>{_html_cell(c)}</td>" for c in row) + "</tr>\n" for row in block.rows)
        return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{rows}</tbody>\n</table>"
    if isinstance(block, Code):
        return f"<pre><code>{_esc(block.text)}</code></pre>"
    return f"<p>{_esc(block)}</p>"


def _html_cell(cell: Cell) -> str:
    if isinstance(cell, Image):
        return _html_img(cell)
    if isinstance(cell, Code):
        return f"<code>{_esc(cell.text)}</code>"
    if isinstance(cell, list):
        return "<br>".join(_html_cell(c) for c in cell)
    return _esc(cell)


def _html_img(image: Image) -> str:
    data = base64.b64encode(image.png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{_esc(image.alt)}" title="{_esc(image.alt)}">'


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


# --- Markdown --------------------------------------------------------------------------------------
def to_markdown(page: Page) -> str:
    lines = [f"# {page.title}", ""]
    for section in page.sections:
        lines += [f"## {section.title}", ""]
        for block in section.blocks:
            lines += [_md_block(block), ""]
    return "\n".join(lines)


def _md_block(block: Block) -> str:
    if isinstance(block, Image):
        caption = f"\n\n*{block.caption}*" if block.caption else ""
        return f"![{block.alt}]({block.name}){caption}"
    if isinstance(block, Table):
        lines = ["| " + " | ".join(block.headers) + " |", "|" + "---|" * len(block.headers)]
        lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
        return "\n".join(lines)
    if isinstance(block, Code):
        return f"```\n{block.text}\n```"
    return block


def _md_cell(cell: Cell) -> str:
    if isinstance(cell, Image):
        return f"![{_md_pipes(cell.alt)}]({cell.name})"
    if isinstance(cell, Code):
        return "`" + _md_pipes(cell.text).replace("`", "'") + "`"
    if isinstance(cell, list):
        return "<br>".join(_md_cell(c) for c in cell)
    return _md_pipes(cell)


def _md_pipes(text: str) -> str:
    """GitHub tables need `\\|` for a pipe inside a cell, even inside a code span."""
    return text.replace("|", "\\|")
