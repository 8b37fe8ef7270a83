"""Serve the built site on 127.0.0.1 (correct MIME types for .wasm and .mjs).

Usage: python lite/serve.py [DIR] [--port N]  (DIR relative to the working directory)
"""

import time
from pathlib import Path

import browser
import build_site

from microgpt.tools.args import ArgumentParser, whole_number


def main(argv=None):
    parser = ArgumentParser(prog="lite/serve.py", description=__doc__.splitlines()[0])
    parser.add_argument("directory", nargs="?", type=Path, default=build_site.OUTPUT)
    parser.add_argument(
        "--port", type=whole_number(0, 65535), default=8000, help="0: any free port"
    )
    args = parser.parse_args(argv)
    directory = args.directory.resolve()
    missing = build_site.missing_files(directory)
    if missing:
        raise SystemExit(
            f"error: no working site in {directory} (no {missing[0]}); build it with: make site"
        )
    try:
        with browser.serve(directory, args.port) as url:
            print(f"serving {directory} at {url} (Ctrl-C stops)", flush=True)
            while True:
                time.sleep(3600)
    except OSError as exc:
        raise SystemExit(
            f"error: cannot serve on port {args.port}: {exc.strerror}; pick --port"
        ) from None
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
