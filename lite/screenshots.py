"""Screenshots of the built site at desktop and phone sizes, in headless Chromium, offline.

The landing page before and after training, and a chapter as the landing page opens it
(its kernel started, its first code cells run), each at 1280 x 900 and on a phone
(390 x 844 CSS pixels, touch): look at them after a change to the pages or their styles.

Usage: python lite/screenshots.py [--site DIR] [--output DIR] [--chapter NAME]
Writes PNG files to lite/_bench/screenshots/ (default) and lists them.
"""

import argparse
import sys
from pathlib import Path

import browser
import build_site
import engines

from microgpt.book import chapters

OUTPUT = build_site.LITE / "_bench" / "screenshots"
TRAINED = """async () => {
  const run = window.microgptRun;
  return run && (run.state === 'done' || run.state === 'error');
}"""
# the chapter page the landing page links to, its kernel started and its first code cells run
RUN_FIRST_CELLS = """async (count) => {
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  while (!window.jupyterapp) await sleep(50);
  const app = window.jupyterapp;
  await app.restored;
  const find = () => [...app.shell.widgets('main')].find((w) => w.sessionContext && w.content);
  let widget = find();
  while (!widget) {
    await sleep(50);
    widget = find();
  }
  await widget.context.ready;
  await widget.sessionContext.ready;
  const cells = widget.content.widgets;
  let ran = 0;
  for (let i = 0; i < cells.length && ran < count; i++) {
    if (cells[i].model.type !== 'code') continue;
    widget.content.activeCellIndex = i;
    await app.commands.execute('notebook:run-cell');
    ran++;
  }
  widget.content.activeCellIndex = 0;
  widget.content.scrollToItem(0);
  await sleep(500);
  return widget.context.path;
}"""


def chapter_link(session, name):
    """The href of the landing page's link to chapter `name`."""
    return session.run(
        "async (name) => [...document.querySelectorAll('#chapters a')]"
        ".map((a) => a.getAttribute('href')).find((href) => href.endsWith(name))",
        name,
    )


def take(site, output, chapter):
    output.mkdir(parents=True, exist_ok=True)
    shots = []
    with browser.serve(site) as url:
        for size, phone in (("desktop", False), ("phone", True)):
            with engines.open_session("chromium", phone=phone) as session:
                session.goto(url)
                shots.append(output / f"landing-{size}.png")
                session.screenshot(shots[-1])
                session.run("async () => { document.getElementById('train').click(); }")
                session.wait_for(TRAINED, timeout_s=300, interval_s=0.2)
                shots.append(output / f"landing-trained-{size}.png")
                session.screenshot(shots[-1])
                session.goto(url + chapter_link(session, chapter))
                session.run(RUN_FIRST_CELLS, 2, timeout_s=300)
                shots.append(output / f"chapter-{size}.png")
                session.screenshot(shots[-1])
    return shots


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, help="a built site (default: make site's, rebuilt)")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--chapter", default=chapters(build_site.BOOK)[1].name)
    args = parser.parse_args(argv)
    reason = engines.missing("chromium")
    if reason:
        raise SystemExit(f"error: {reason}")
    site = args.site.resolve() if args.site else build_site.build()
    for path in take(site, args.output, args.chapter):
        print(path)


if __name__ == "__main__":
    sys.exit(main())
