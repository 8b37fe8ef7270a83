"""Put an "open in the browser" link under the title of every chapter page of the built book.

The link opens the same notebook in the JupyterLite site, which holds the chapters
flat at its root. Run after `jupyter-book build .` (`make book` does both); running
it again replaces the links instead of adding more.
Usage: python book/add_lite_badges.py [HTML_DIR]  (default: _build/html)
"""

import html
import re
import sys
import urllib.parse
from pathlib import Path

from microgpt.book import chapters

# Where the JupyterLite site is published, relative to the book's root (or an absolute URL).
LITE_SITE = "lite"

ROOT = Path(__file__).resolve().parent.parent
BADGE_CLASS = "lite-badge"
BADGE_RE = re.compile(rf'\n?<p class="{BADGE_CLASS}">.*?</p>\n?', re.S)
ARTICLE_RE = re.compile(r"<article\b")  # the page body (the theme puts a print-only <h1> first)
TITLE_END_RE = re.compile(r"</h1>")
BADGE_STYLE = (
    "display:inline-block;padding:0.2em 0.7em;border-radius:0.3em;background:#f37726;"
    "color:#fff;font-weight:600;text-decoration:none"
)


def lite_url(notebook_name, page_depth, site=LITE_SITE):
    """The site's URL for `notebook_name`, seen from a page `page_depth` folders below the root."""
    query = "path=" + urllib.parse.quote(notebook_name)
    if "://" in site:
        return f"{site.rstrip('/')}/lab/index.html?{query}"
    return f"{'../' * page_depth}{site.strip('/')}/lab/index.html?{query}"


def badge(url):
    return (
        f'<p class="{BADGE_CLASS}"><a href="{html.escape(url)}" style="{BADGE_STYLE}">'
        "&#9654; Open this chapter in the browser (JupyterLite)</a></p>\n"
    )


def add_badge(page_html, url):
    """The page with exactly one badge, right after the title of its article."""
    page_html = BADGE_RE.sub("", page_html)
    article = ARTICLE_RE.search(page_html)
    match = TITLE_END_RE.search(page_html, article.end() if article else 0)
    if match is None:
        raise ValueError("no <h1> title to put the link under")
    return page_html[: match.end()] + "\n" + badge(url) + page_html[match.end() :]


def chapter_pages(html_dir):
    """(page, notebook name) for every chapter notebook that has a built page."""
    for notebook in chapters(ROOT / "book"):
        page = html_dir / "book" / f"{notebook.stem}.html"
        if page.is_file():
            yield page, notebook.name


def main(argv):
    html_dir = Path(argv[0]).resolve() if argv else ROOT / "_build" / "html"
    pages = list(chapter_pages(html_dir))
    if not pages:
        sys.exit(f"no chapter pages under {html_dir}/book; build the book first (make book)")
    for page, notebook_name in pages:
        depth = len(page.relative_to(html_dir).parts) - 1
        page.write_text(add_badge(page.read_text("utf-8"), lite_url(notebook_name, depth)), "utf-8")
    print(f"browser links added to {len(pages)} chapter pages in {html_dir}")


if __name__ == "__main__":
    main(sys.argv[1:])
