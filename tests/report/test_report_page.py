from optsearch.report.page import REPORT_MARK, Code, Image, Page, Section, Table, to_html, to_markdown, write_page

PNG = b"\x89PNG\r\n\x1a\n fake"


def page() -> Page:
    table = Table(["rule", "formula"], [[Code("log|g| + m"), [Image("r.png", PNG, "\\log|g|"), Code("x<y")]]])
    return Page("T <1>", [Section("S", ["a & b", Image("p.png", PNG, "plot", "cap"), table])])


def test_html_escapes_text_and_embeds_images_as_data_uris():
    html = to_html(page())
    assert "<title>T &lt;1&gt;</title>" in html and "<p>a &amp; b</p>" in html
    assert html.count('src="data:image/png;base64,') == 2
    assert "<code>x&lt;y</code>" in html and "p.png" not in html  # self-contained


def test_markdown_links_png_files_and_escapes_pipes_in_tables():
    md = to_markdown(page())
    assert "![plot](p.png)" in md and "*cap*" in md
    assert "`log\\|g\\| + m`" in md
    assert "| rule | formula |" in md


def test_write_page_puts_html_markdown_and_pngs_in_the_folder(tmp_path):
    path = write_page(page(), tmp_path / "out")
    assert path == tmp_path / "out" / "index.html"
    assert {p.name for p in path.parent.iterdir()} == {"index.html", "report.md", "p.png", "r.png", REPORT_MARK}
    assert (path.parent / "p.png").read_bytes() == PNG
