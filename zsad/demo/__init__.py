"""The Gradio demo (``zsad demo``): upload images, see heat maps, verdicts, regions and explanations in a browser.

``session`` holds what the page does (plain functions on results, unit-tested without a browser), ``views`` how a
run is shown (cached heat maps and tiles), ``understood`` the "What zsad understood" panel, ``jobs`` which page runs
which job (a closed tab cancels it), ``app`` the page itself, ``cli`` the subcommand. The code lives in the package (not in a top-level ``demo/`` mapped by
``package-dir`` as ``prompts/`` is) because it is code that ``zsad demo`` imports, like ``zsad.cli``, not data; the
top-level ``demo/app.py`` is a two-line launcher for hosting the app as a plain script (e.g. a Hugging Face Space).
Importing this package does not import gradio or torch.
"""
from zsad.demo.cli import add_demo_parser, run_demo

__all__ = ["add_demo_parser", "run_demo"]
