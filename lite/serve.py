"""Serve the built site on 127.0.0.1 (correct MIME types for .wasm and .mjs).

Usage: python lite/serve.py [DIR] [--port N]
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import browser  # noqa: E402
import build_site  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", nargs="?", type=Path, default=build_site.OUTPUT)
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    if not (args.directory / "index.html").is_file():
        raise SystemExit(f"error: no site in {args.directory}; build it first with: make site")
    try:
        with browser.serve(args.directory, args.port) as url:
            print(f"serving {args.directory} at {url} (Ctrl-C stops)", flush=True)
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
