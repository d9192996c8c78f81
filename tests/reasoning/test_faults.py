"""``zsad detect --explain llm`` against the fault-injecting server (conftest.py): for each fault, the exit code, the
console warning, what the run cost and the summary line's counts (issue 17: LLM failures were silent and slow).

What a run costs is bounded by counting, not timing: requests the server saw, body bytes it delivered before the
client hung up, and the seconds the run would have slept, recorded by an injected clock
(``zsad.reasoning.llm.pause``). With a 0.5 s deadline per request, a run's LLM time is at most
requests x 0.5 s + slept.
"""
from __future__ import annotations

import csv
import json
import re

import pytest

from zsad.cli.main import main

TIMEOUT = 0.5
CONCURRENCY = 4
MAX_FAILURES = 3
DEFINE = "holes and stains are defects; colour differences are normal"


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    from zsad.data.synth import generate_dataset

    root = generate_dataset(tmp_path_factory.mktemp("faults"), categories=["pill"], n_train=1, n_test_good=3,
                            n_test_defect=1, size=64, seed=0) / "pill" / "test"
    return [str(root / "good" / f"00{i}.png") for i in range(3)] + [str(root / "hole" / "000.png"),
                                                                   str(root / "stain" / "000.png")]


@pytest.fixture
def slept(monkeypatch):
    """The injected clock: every wait between attempts is recorded instead of slept."""
    from zsad.reasoning import llm

    waits: list[float] = []
    monkeypatch.setattr(llm, "pause", waits.append)
    return waits


@pytest.fixture
def detect(images, tmp_path, capsys, slept):
    def run(url, *extra):
        out = tmp_path / "out"
        code = main(["detect", *images, "--backbone", "tiny-clip", "--method", "text", "--out", str(out),
                     "--explain", "llm", "--llm-base-url", url, "--llm-model", "scripted",
                     "--llm-timeout", str(TIMEOUT), "--llm-concurrency", str(CONCURRENCY),
                     "--llm-max-failures", str(MAX_FAILURES), *extra])
        captured = capsys.readouterr()
        report = json.loads((out / "results.json").read_text()) if (out / "results.json").is_file() else None
        return code, captured.out, captured.err, report

    return run


def counts(stdout: str) -> dict[str, int]:
    """The summary line's explanation counts: {"by LLM": 3, "by rules after timeout": 2, ...}."""
    line = next(line for line in stdout.splitlines() if "images scored" in line)
    part = line.split("explanations: ", 1)[1].split(" -> ")[0].split("; verdicts")[0]
    return {label: int(n) for n, label in re.findall(r"(\d+) ([^,]+)", part)}


def warnings_of(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("zsad: warning:")]


def test_happy(server, detect, slept):
    code, out, err, report = detect(server.base_url)
    assert code == 0 and warnings_of(err) == []
    assert counts(out) == {"by LLM": 5}
    assert len(server.requests) == 5 and slept == [] and server.gets == 1  # one model-list check, one request each
    assert all(r["reasoning"]["source"] == "llm" for r in report["results"])


# mode -> the last cause the warning names and the summary's fallback label
STOPPING = {
    "slow": "timeout",
    "5xx": "HTTP 503",
    "trickle": "timeout",
    "malformed": "invalid answer",
    "schema": "invalid answer",
    "oversize": "oversize reply",
    "non-utf8": "non-UTF-8 reply",
}


@pytest.mark.parametrize("mode", sorted(STOPPING))
def test_failing_server_is_stopped_after_n_failures(server, detect, slept, mode):
    server.mode = mode
    code, out, err, report = detect(server.base_url)
    cause = STOPPING[mode]
    assert code == 0
    (warning,) = warnings_of(err)  # once, with the cause and the count of affected images
    assert f"the LLM was stopped after {MAX_FAILURES} consecutive failures (last: {cause})" in warning
    assert "5 of 5 images explained by rules instead" in warning
    summary = counts(out)
    assert summary.get("by LLM") == 0 and sum(summary.values()) == 5
    assert set(summary) <= {"by LLM", f"by rules after {cause}", "by rules (LLM stopped)"}
    assert all(r["reasoning"]["source"] == "fallback" for r in report["results"])
    # cost: at most N failures plus what was already in flight, retries included; slept only the backoff
    assert len(server.requests) <= MAX_FAILURES + CONCURRENCY
    assert sum(slept) <= 3.0 and all(s in (0.5, 1.0) for s in slept)
    if mode == "trickle":  # the deadline is wall time: a byte every 0.1 s cannot hold a request past 0.5 s
        assert server.sent and max(server.sent) <= 40 < len(json.dumps(report["results"][0]))
    if mode in ("malformed", "schema", "oversize", "non-utf8"):
        assert slept == []  # replies that are not a valid answer are never retried (one repair round at most)


def test_rate_limit_waits_retry_after(server, detect, slept):
    server.mode, server.rate_limited, server.retry_after = "429", 2, "7"
    code, out, err, _ = detect(server.base_url)
    assert code == 0 and warnings_of(err) == []
    assert counts(out) == {"by LLM": 5}
    assert slept == [7.0, 7.0] and len(server.requests) == 7  # the server's wish, not the backoff


def test_retry_after_is_capped(server, make_openai_llm):
    from pydantic import BaseModel

    class Answer(BaseModel):
        verdict: str

    server.script = [("status", 429, {"Retry-After": "3600"}), ("reply", '{"verdict": "normal"}')]
    llm = make_openai_llm(max_retry_after=30.0)
    assert llm.complete_json([{"role": "user", "content": "x"}], Answer).verdict == "normal"
    assert llm.sleeps == [30.0]


def test_refused_connection_is_one_error_before_any_image(refused_url, detect, tmp_path):
    code, out, err, report = detect(refused_url)
    assert code == 2 and report is None and out == ""
    (line,) = [line for line in err.splitlines() if line.startswith("zsad:")]
    assert line.startswith(f"zsad: error: LLM check failed: the LLM server at {refused_url} did not answer")
    assert "start it or fix --llm-base-url" in line and "--llm-optional" in line


def test_refused_connection_with_llm_optional_runs_offline(refused_url, detect):
    code, out, err, report = detect(refused_url, "--llm-optional")
    assert code == 0
    (warning,) = warnings_of(err)
    assert "LLM unavailable" in warning and "running offline (--llm-optional)" in warning
    assert counts(out) == {"by LLM": 0, "by rules (LLM offline)": 5}
    assert report["settings"]["ran"]["reasoning"]["llm"]["llm"] == "offline"


def test_refused_key_is_one_error(server, detect):
    server.mode = "401"
    code, _, err, report = detect(server.base_url)
    assert code == 2 and report is None and server.requests == []
    assert "refused its model list: HTTP 401 (the server refused the key: check the variable named by " \
           "--llm-api-key-env)" in err


def test_401_on_requests_stops_at_once(server, detect, slept):
    server.models_status = 404  # a server without a model list: the check cannot see the refusal
    server.script = [("status", 401)] * 10
    code, out, err, _ = detect(server.base_url)
    assert code == 0 and len(server.requests) <= CONCURRENCY and slept == []  # never retried, never re-sent
    (warning,) = warnings_of(err)
    assert "the LLM was stopped after HTTP 401" in warning
    assert counts(out)["by LLM"] == 0


def test_unlisted_model_and_unset_key_are_errors(server, detect, monkeypatch):
    server.models = ["other-model"]
    code, _, err, _ = detect(server.base_url)
    assert code == 2 and "model 'scripted' is not served by" in err and "(it serves: other-model)" in err
    server.models = ["scripted"]
    monkeypatch.delenv("ZSAD_TEST_ABSENT", raising=False)
    code, _, err, _ = detect(server.base_url, "--llm-api-key-env", "ZSAD_TEST_ABSENT")
    assert code == 2 and "environment variable ZSAD_TEST_ABSENT (named by --llm-api-key-env) is not set" in err
    assert server.requests == []


def test_missing_local_model_is_one_error(images, tmp_path, capsys):
    code = main(["detect", *images[:1], "--backbone", "tiny-clip", "--out", str(tmp_path / "o"), "--explain", "llm",
                 "--llm-backend", "transformers", "--llm-model", str(tmp_path / "no-such-model")])
    err = capsys.readouterr().err
    assert code == 2 and f"local LLM folder {tmp_path / 'no-such-model'} not found" in err
    assert "Repo id" not in err


def test_injection_cannot_move_defects_nor_contradict_the_verdict(server, detect):
    server.mode = "injection"
    code, out, err, report = detect(server.base_url, "--define", DEFINE, "--threshold", "0")  # every image anomalous
    assert code == 0
    assert any("the LLM read named defects as normal variations (hole, stain); they stay defects" in w
               for w in warnings_of(err))
    echo = next(line for line in err.splitlines() if line.startswith("definition understood as"))
    assert "defects: hole, stain" in echo and "kept as defects" in echo
    definition = report["settings"]["ran"]["reasoning"]["definition"]
    assert definition["defects"] == ["hole", "stain"] and definition["kept_as_defects"] == ["hole", "stain"]
    assert counts(out) == {"by LLM": 0, "by rules replacing an LLM text that contradicted the verdict": 5}
    for record in report["results"]:
        assert record["verdict"] == "anomalous" and record["reasoning"]["verdict"] == "normal"
        assert record["reasoning"]["replaced"].startswith("the LLM's verdict is normal")
        text = record["explanation"]
        assert text.startswith("anomalous") and "OVERRIDE" not in text
        assert not re.search(r"\x1b|\*\*|<b>|\[31m", record["reasoning"]["llm_explanation"])


def test_definition_parse_failure_warns(server, detect):
    server.script = [("reply", "not json"), ("reply", "still not json")]  # the definition's request and its repair
    code, out, err, report = detect(server.base_url, "--define", DEFINE)
    assert code == 0
    assert any("the LLM could not read the definition (invalid answer)" in w for w in warnings_of(err))
    assert report["settings"]["ran"]["reasoning"]["definition"]["parser"] == "rules"
    assert counts(out) == {"by LLM": 5}


def test_llm_verdict_csv_carries_the_numeric_verdict_beside_it(server, detect, tmp_path):
    server.script = [("status", 400)]  # one image's request is refused: its numeric verdict counts
    code, out, err, report = detect(server.base_url, "--verdict", "llm", "--llm-concurrency", "1")
    assert code == 0
    assert "verdicts: 4 by LLM, 1 numeric" in out
    with open(tmp_path / "out" / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    header = list(rows[0])
    assert header[header.index("verdict") + 1] == "numeric_verdict"
    assert [row["numeric_verdict"] for row in rows] == [r["reasoning"]["numeric_verdict"] for r in report["results"]]
    finals = [r["reasoning"]["final_verdict"] for r in report["results"]]
    assert finals.count("numeric") == 1 and finals.count("llm") == 4
    (warning,) = warnings_of(err)
    assert "1 of 5 images explained by rules instead (1 after HTTP 400); their numeric verdicts are final" in warning
