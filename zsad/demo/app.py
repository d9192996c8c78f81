"""The Gradio page: layout and event wiring only; what each event does is in ``zsad.demo.session``.

Safety and sharing: bound to 127.0.0.1 unless told otherwise, never a share link, analytics off, uploads limited in
size (``max_file_size``) and count (``DemoSettings.max_images``), runs queued with one model run at a time
(``concurrency_id="model"``, limit 1) while threshold moves and selections, which only redraw, run beside it.
Every ``ZsadError`` (bad file, no evidence possible, weights unavailable, too many files) is shown in the page's
message box (emptied when a run starts: messages belong to the current run) and as a short toast; the page keeps its
previous results and stays usable. A closed or reloaded tab cancels its run (``zsad.demo.jobs``). After a run, "What
zsad understood" shows the definition as parsed and the rules applied (``zsad.demo.understood``).
"""
import inspect
import logging
import os
import sys
import tempfile
import time
from dataclasses import replace

from zsad.demo.grouping import discover_types, grouped_gallery, result_index, types_text
from zsad.demo.jobs import Jobs
from zsad.demo.session import (
    DemoSettings, DetectorCache, RunRequest, RunState, apply_threshold, detail, initial_backbone,
    make_examples, preset_choice, preset_names, prompt_choices, public, run_detection, settings_text, slider_bounds,
    summary, table_rows, write_csv, TABLE_COLUMNS,
)
from zsad.demo.understood import understood_text
from zsad.errors import ZsadError

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported

log = logging.getLogger("zsad.demo")
AUTO, SLIDER = "automatic (batch rule)", "slider"
TOAST_SECONDS = 8  # a failed run's toast closes by itself: toasts of earlier runs do not pile up
# Gallery captions under the tile, whole and wrapped, instead of over its legend strip and cut.
CSS = """
#gallery .thumbnail-item { display: flex; flex-direction: column; height: auto; }
#gallery .thumbnail-item img { flex: 1 1 auto; min-height: 0; }
#gallery .caption-label { position: static; max-width: 100%; white-space: normal; overflow-wrap: anywhere;
  text-overflow: clip; overflow: visible; transform: none; margin: 2px 0 0 0; text-align: center; }
"""


def _messages(lines: list[str]) -> str:
    return "\n".join(f"- {line}" for line in lines) if lines else ""


def build_app(settings: DemoSettings | None = None, cache: DetectorCache | None = None,
              examples_dir: str | None = None):
    """The ``gr.Blocks`` app (not launched). ``examples_dir``: where start-up example images are written."""
    from zsad.errors import require

    gr = require("gradio", "demo")
    import pandas as pd

    from zsad.backbones.spec import DEFAULT_BACKBONE, TINY_BACKBONES
    from zsad.scoring.registry import method_help, method_names

    settings = settings or DemoSettings()
    cache = cache or DetectorCache(settings.cache_size)
    jobs = Jobs()
    examples: tuple[list[str], list[str]] = ([], [])
    if settings.examples:
        examples_dir = examples_dir or tempfile.mkdtemp(prefix="zsad-demo-examples-")
        examples = make_examples(examples_dir)
    presets = preset_names()
    first_backbone = initial_backbone(settings)
    backbones = list(dict.fromkeys([first_backbone, DEFAULT_BACKBONE, *TINY_BACKBONES]))

    def empty_table():
        return pd.DataFrame(columns=TABLE_COLUMNS)

    def views(state: RunState, index: int = 0):
        picture, explanation, rules = detail(state, index)
        return (
            grouped_gallery(state), pd.DataFrame(table_rows(state), columns=TABLE_COLUMNS), write_csv(state),
            summary(state), picture, explanation, rules, settings_text(state.settings), types_text(state),
        )

    def run(files, references, object_name, definition, backbone, method, prompts, preset, mode, threshold, group,
            request: gr.Request, progress=gr.Progress(track_tqdm=True)):
        run_request = RunRequest(
            images=files, references=references, object_name=object_name, definition=definition, method=method,
            prompts=None if not prompts or prompts == "(default)" else prompts,
            preset="" if not preset or preset == "(none)" else preset,
            backbone=backbone, threshold=float(threshold) if mode == SLIDER else None,
        )
        session = getattr(request, "session_hash", None)
        cancel = jobs.start(session)
        try:
            state = run_detection(cache, run_request, settings, status=lambda f, d: progress(f, desc=d),
                                  cancel=cancel)
            state = discover_types(cache, state) if group else state
        except ZsadError as error:
            if cancel.is_set():  # the page is gone: nobody to tell
                log.info("run cancelled: its page was closed or reloaded")
                return (gr.skip(),) * 14
            message = public(error)
            gr.Warning(message, duration=TOAST_SECONDS)
            return (gr.skip(),) * 12 + (f"**Could not run:** {message}", gr.skip())
        except Exception as error:  # a bug: keep the page alive, log the traceback on the server only
            log.exception("demo run failed")
            gr.Warning(f"internal error ({type(error).__name__}); see the server log", duration=TOAST_SECONDS)
            return (gr.skip(),) * 12 + (f"**Internal error** ({type(error).__name__}); see the server log",
                                        gr.skip())
        finally:
            jobs.finish(session, cancel)
        low, high, value = slider_bounds(state)
        step = float(f"{(high - low) / 500:.2g}")
        slider = gr.Slider(minimum=low, maximum=high, value=value, step=step, interactive=True)
        return (state, 0, *views(state), understood_text(state.settings), _messages(state.notes), slider)

    def cancel_run(request: gr.Request):
        if jobs.cancel(getattr(request, "session_hash", None)):
            log.info("cancelling a run: its page was closed or reloaded")

    def move_threshold(state: RunState | None, threshold, index, group):
        if state is None or not state.scores:
            return (gr.skip(),) * 11
        state = apply_threshold(state, float(threshold))  # verdicts only: maps, tiles and settings are cached
        try:
            state = discover_types(cache, state) if group else state  # the anomalous set changed: its types too
        except ZsadError as error:
            gr.Warning(f"could not group by defect type: {error}")
        shown = views(state, index or 0)
        return (state, *shown[:7], gr.skip(), shown[8], SLIDER)  # the settings panel does not change

    def group_by_type(state: RunState | None, group, index):
        if state is None or not state.scores:
            return (gr.skip(),) * 10
        try:
            state = discover_types(cache, state) if group else replace(state, discovery=None)
        except ZsadError as error:
            gr.Warning(str(error))
            return (gr.skip(),) * 10
        return (state, *views(state, index or 0))

    def select(state: RunState | None, evt: gr.SelectData):
        if state is None:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        index = result_index(state, evt.index)  # the gallery may be ordered by type
        picture, explanation, rules = detail(state, index)
        return index, picture, explanation, rules

    def choose_preset(choice):
        values = preset_choice(None if choice == "(none)" else choice)
        return gr.update(value=values["backbone"]), gr.update(value=values["method"])

    def use_examples():
        return examples[0], examples[1], "pill"

    # delete_cache: uploads and served files older than an hour are removed every half hour
    # Gradio 6 takes the page's CSS in launch(), earlier versions in Blocks()
    css = {} if "css" in inspect.signature(gr.Blocks.launch).parameters else {"css": CSS}
    with gr.Blocks(title="zsad demo", analytics_enabled=False, delete_cache=(1800, 3600), **css) as demo:
        gr.Markdown(
            "# zsad: zero-shot anomaly detection\n"
            "Upload images of one product (and, if you have them, a few good reference images), run, and read per "
            "image an anomaly score, a heat map, a verdict and an explanation. Move the threshold to re-decide the "
            f"verdicts without recomputing the maps. Up to {settings.max_images} images of at most "
            f"{settings.max_file_size} each."
        )
        state = gr.State(None)
        selected = gr.State(0)
        with gr.Row():
            with gr.Column(scale=1, min_width=320):
                files = gr.File(label="Test images", file_count="multiple", file_types=["image"],
                                elem_id="test-images")
                example_button = gr.Button("Use example images (synthetic pills)", size="sm", elem_id="examples",
                                           visible=bool(examples[0]))
                object_name = gr.Textbox(label="Object name", placeholder="e.g. pill, bottle, screw",
                                         elem_id="object-name")
                references = gr.File(label="Good reference images (optional: few-shot evidence)",
                                     file_count="multiple", file_types=["image"], elem_id="references")
                definition = gr.Textbox(
                    label="What counts as a defect, in words (optional)", lines=2, elem_id="definition",
                    placeholder="scratches on the label are defects; colour differences are not")
                with gr.Accordion("Model and evidence", open=False):
                    preset = gr.Dropdown(["(none)", *presets], value=settings.preset or "(none)",
                                         label="Preset (sets backbone and method; change them after to override)",
                                         elem_id="preset")
                    backbone = gr.Dropdown(backbones, value=first_backbone, label="Backbone",
                                           allow_custom_value=True, elem_id="backbone")
                    method = gr.Dropdown(method_names(), value=preset_choice(settings.preset)["method"],
                                         label="Method", info=method_help(), elem_id="method")
                    prompts = gr.Dropdown(["(default)", *prompt_choices()], value="(default)", allow_custom_value=True,
                                          label="Prompts (a prompt set, or learned:NAME)", elem_id="prompts")
                mode = gr.Radio([AUTO, SLIDER], value=AUTO, label="Verdict threshold", elem_id="threshold-mode")
                threshold = gr.Slider(0.0, 1.0, value=0.5, step=0.001, label="Threshold on the image score",
                                      elem_id="threshold")
                run_button = gr.Button("Detect anomalies", variant="primary", elem_id="run")
            with gr.Column(scale=2):
                messages = gr.Markdown(elem_id="messages")
                overview = gr.Markdown(elem_id="summary")
                group = gr.Checkbox(False, label="Group by defect type (the anomalous images, named by type)",
                                    elem_id="group-types")
                types = gr.Markdown(elem_id="defect-types")
                pictures = gr.Gallery(label="Heat maps (click one to inspect it)", columns=4, height="auto",
                                      object_fit="contain", format="png", elem_id="gallery", interactive=False,
                                      allow_preview=False)  # the selected image is shown large below
                with gr.Row():
                    large = gr.Image(label="Selected image: top regions outlined", type="pil", format="png",
                                     interactive=False, elem_id="selected")
                    explanation = gr.Markdown(elem_id="explanation")
                with gr.Accordion("What zsad understood", open=True, elem_id="understood-panel"):
                    understood = gr.Markdown("Run to see how zsad read your definition and which rules it applied.",
                                             elem_id="understood")
                with gr.Accordion("Induced rules (reasoning layer)", open=False):
                    rules = gr.Markdown("The reasoning layer is off: no rules were induced.", elem_id="rules")
                with gr.Accordion("Settings used", open=False):
                    used = gr.Markdown("Run to see the settings that ran.", elem_id="settings-used")
                table = gr.Dataframe(value=empty_table(), label="Results (the explanation of each image is in the CSV)",
                                     interactive=False, max_height=1200, elem_id="results-table")
                csv_file = gr.File(label="results.csv", interactive=False, elem_id="csv")

        outputs_views = [pictures, table, csv_file, overview, large, explanation, rules, used, types]
        run_button.click(lambda: "", None, messages, concurrency_id="view", show_progress="hidden").then(
            run, [files, references, object_name, definition, backbone, method, prompts, preset, mode, threshold,
                  group],
            [state, selected, *outputs_views, understood, messages, threshold],
            concurrency_limit=1, concurrency_id="model", show_progress="full",
        )
        demo.unload(cancel_run)
        threshold.input(move_threshold, [state, threshold, selected, group], [state, *outputs_views, mode],
                        trigger_mode="always_last", concurrency_limit=4, concurrency_id="view", show_progress="hidden")
        pictures.select(select, [state], [selected, large, explanation, rules], concurrency_id="view",
                        show_progress="hidden")
        group.input(group_by_type, [state, group, selected], [state, *outputs_views], concurrency_limit=1,
                    concurrency_id="model")
        example_button.click(use_examples, None, [files, references, object_name], concurrency_id="view")
        preset.input(choose_preset, [preset], [backbone, method], concurrency_id="view")
    demo.queue(max_size=settings.queue_size, default_concurrency_limit=1)
    demo.zsad_examples_dir = examples_dir  # where the example images lie (allowed to be served)
    return demo


def launch(settings: DemoSettings, host: str = "127.0.0.1", port: int | None = None, block: bool = True):
    """Build and serve the app. ``block=False`` returns at once (tests); the caller then calls ``demo.close()``.

    Gradio's own console lines are off (``quiet``, ``close(verbose=False)``): they advertise a share link this app
    never creates and a Ctrl+C notice of its own; zsad prints the one line a user needs, where the page is."""
    demo = build_app(settings)
    allowed = [demo.zsad_examples_dir] if demo.zsad_examples_dir else None
    css = {"css": CSS} if "css" in inspect.signature(demo.launch).parameters else {}
    demo.launch(server_name=host, server_port=port, share=False, max_file_size=settings.max_file_size, **css,
                allowed_paths=allowed, show_error=False, ssr_mode=False, mcp_server=False, pwa=False,
                prevent_thread_lock=True, quiet=True, footer_links=[])
    if block:
        print(f"zsad demo: serving {demo.local_url} (Ctrl+C stops it)", file=sys.stderr, flush=True)
        try:
            while demo.is_running:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
        finally:
            demo.close(verbose=False)
    return demo
