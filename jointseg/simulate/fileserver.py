"""The demo file server process: one directory over HTTP with byte-range support.

``python -m jointseg.simulate.fileserver files ROOT [--host H] [--port P]`` (what
:class:`jointseg.simulate.servers.FileServer` and the detached demo servers run):
starlette ``StaticFiles`` under uvicorn; ``GET /_jointseg/health`` answers
``{"service": "files", "root": "<absolute root>"}``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

HEALTH_PATH = "/_jointseg/health"


def file_app(root: Path):  # noqa: ANN201 - a starlette app; starlette is an optional import
    """The starlette app that serves ``root`` (Range requests via ``StaticFiles``)."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    root = Path(root).resolve()

    async def health(request):  # noqa: ANN001, ANN202
        return JSONResponse({"service": "files", "root": str(root)})

    return Starlette(routes=[
        Route(HEALTH_PATH, health),
        Mount("/", app=StaticFiles(directory=str(root), follow_symlink=False)),
    ])


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m jointseg.simulate.fileserver files ROOT [--host H] [--port P]``."""
    parser = argparse.ArgumentParser(prog="python -m jointseg.simulate.fileserver")
    sub = parser.add_subparsers(dest="cmd", required=True)
    files = sub.add_parser("files", help="serve a directory with Range support")
    files.add_argument("root", type=Path)
    files.add_argument("--host", default="127.0.0.1")
    files.add_argument("--port", type=int, default=8752)
    args = parser.parse_args(argv)

    import uvicorn

    uvicorn.run(file_app(args.root), host=args.host, port=args.port,
                log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
