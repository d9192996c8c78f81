"""``zsad demo``: the subcommand's options and entry point (``add_demo_parser`` / ``run_demo``), also runnable as
``python -m zsad.demo`` (``zsad/demo/__main__.py``, which goes through ``zsad.cli.main`` for one error handling)."""
from __future__ import annotations

import argparse
import sys

from zsad.errors import ZsadError


def _port(text: str) -> int:
    value = int(text)
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"must be a TCP port 1..65535, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


DEMO_MODEL_OPTIONS = ("backbone", "pretrained", "device")


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from zsad.config import settings_table
    from zsad.config_fields import add_flags

    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind; 0.0.0.0 makes the app reachable from other machines (no login!)")
    parser.add_argument("--port", type=_port, default=7860, help="TCP port")
    parser.add_argument("--preset", default=None,
                        help="a published setting (see zsad detect --help) or a preset YAML file; it sets the page's "
                             "backbone and method, which the page can still change")
    # The model flags are zsad detect's own (one declaration): the page's first backbone, its weights, the device.
    add_flags(parser, settings_table(), only=lambda item: item.option in DEMO_MODEL_OPTIONS,
              defaults={"backbone": "the preset's, else ViT-L-14-336"})
    parser.add_argument("--max-images", type=_positive_int, default=32, help="test images per run")
    parser.add_argument("--max-references", type=_positive_int, default=16, help="reference images per run")
    parser.add_argument("--max-file-size", default="20mb", help="largest upload, e.g. 20mb")
    parser.add_argument("--no-examples", action="store_true",
                        help="do not generate the synthetic example images at start-up")
    parser.set_defaults(run=run_demo)
    return parser


def add_demo_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``demo`` to ``zsad``'s subcommands (``build_parser`` in ``zsad.cli.main``)."""
    parser = subparsers.add_parser(
        "demo", help="browser app: upload images, see heat maps, verdicts and explanations (Gradio)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    return configure_parser(parser)


def settings_from_args(args):
    from zsad.demo.session import DemoSettings, preset_names

    if args.preset and not args.preset.endswith((".yaml", ".yml")) and args.preset not in preset_names():
        raise ZsadError(f"--preset {args.preset}: unknown preset; known: {', '.join(preset_names())}")
    return DemoSettings(backbone=getattr(args, "backbone", None), pretrained=getattr(args, "pretrained", None),
                        preset=args.preset, device=getattr(args, "device", "auto"), max_images=args.max_images,
                        max_references=args.max_references, max_file_size=args.max_file_size,
                        examples=not args.no_examples)


def run_demo(args) -> int:
    """Serve until interrupted. Expected problems raise ``ZsadError`` (the CLI prints them as one line)."""
    from zsad.demo.app import launch

    settings = settings_from_args(args)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"zsad demo: warning: binding {args.host} makes the app reachable from other machines; it has no "
              "login", file=sys.stderr)
    try:
        launch(settings, host=args.host, port=args.port, block=True)
    except OSError as error:  # port taken, address not available
        raise ZsadError(f"cannot serve on {args.host}:{args.port} ({error}); pass another --port") from None
    return 0
