"""Rule and LLM explainers: citations of rule and region, region phrases by retrieval, fallback, no verdict change."""
import json

import numpy as np
import pytest

from zsad.explain import top_regions
from zsad.reasoning.explainers import LLMExplainer, RegionPhraser, RuleExplainer, deduction_schema
from zsad.reasoning.rules import ImageDescription, induce_rules
from zsad.results import AnomalyResult, EvidenceScore


def result(anomalous: bool, name="img.png"):
    grid = np.zeros((4, 4), dtype=np.float32)
    if anomalous:
        grid[1:3, 2:4] = 1.0  # the toy's scratch patches: rows 1-2, cols 2-3
    r = AnomalyResult(name=name, score=0.9 if anomalous else 0.1, is_anomalous=anomalous, threshold=0.5,
                      threshold_rule="fixed", grid_map=grid, original_size=(32, 32), pixel_threshold=0.5,
                      evidence={"text": EvidenceScore(0.8 if anomalous else 0.2, 0.9, 0.1),
                                "fewshot": EvidenceScore(0.7 if anomalous else 0.1, 0.8, 0.1)})
    r.regions = tuple(top_regions(grid, 0.5, (32, 32)))
    return r


@pytest.fixture
def rules():
    d = ImageDescription(objects=["bottle"], colours=["red"], materials=["glass"], shapes=["round"])
    return induce_rules([d, d, d], object_name="bottle")


@pytest.fixture
def phraser(toy):
    vlm = toy.ToyVLM()
    p = RegionPhraser(vlm, ["stain", "scratch", "hole", "dent"], object_name="bottle")
    p.observe("img.png", vlm.features([toy.make_image(toy.RED, 12, scratch=True)]), 0)
    return p


def test_region_phrases_by_retrieval(phraser):
    r = result(True)
    assert phraser.region_phrases("img.png", r.regions[0], (32, 32), top_k=1) == ["scratch"]


def test_rule_explainer_offline_cites_rule_and_region(rules, phraser):
    explainer = RuleExplainer(rules, phraser)
    r = result(True)
    text = explainer.explain(r, list(r.regions))
    assert r.is_anomalous and r.reasoning["verdict"] == "anomalous" and r.reasoning["source"] == "rules"
    assert r.reasoning["rule"] == "a bottle with a scratch is anomalous"  # matched to the region's phrase
    assert r.reasoning["region"] == "R1" and "region R1 (center right" in text and "'scratch'" in text
    assert "breaks rule A" in text
    n = result(False)
    text = explainer.explain(n, list(n.regions))
    assert n.reasoning["verdict"] == "normal" and n.reasoning["rule"] == rules.normal[0].rule
    assert "consistent with rule N1" in text and "no region stands out" in text
    json.dumps(r.to_record())  # results.json-ready


def test_rule_explainer_without_rules_or_text_space():
    r = result(True)
    text = RuleExplainer().explain(r, list(r.regions))
    assert "reaches the threshold" in text and r.reasoning["region"] == "R1"


def llm_answer(**overrides):
    return json.dumps({"verdict": "anomalous", "rule": "A2", "region": "R1",
                       "explanation": "Rule A2 is broken by the scratch in region R1 (center right).", **overrides})


def test_llm_explainer_happy_path(server, make_openai_llm, rules, phraser):
    server.script = [("reply", llm_answer())]
    explainer = LLMExplainer(make_openai_llm(), rules, phraser)
    r = result(True)
    text = explainer.explain(r, list(r.regions))
    assert r.reasoning["source"] == "llm" and r.reasoning["rule_id"] == "A2"
    assert r.reasoning["rule"] == explainer.rule_ids()["A2"].rule and r.reasoning["region_detail"]["id"] == "R1"
    assert "agrees with the numeric verdict anomalous" in text
    evidence = server.requests[0]["messages"][1]["content"]
    assert "<<<DATA rules" in evidence and "<<<DATA evidence" in evidence and '"scratch"' in evidence
    schema = server.requests[0]["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["region"]["enum"] == ["R1", "none"]


def test_llm_disagreeing_verdict_is_recorded_not_applied_and_its_text_replaced(server, make_openai_llm, rules):
    server.script = [("reply", llm_answer(verdict="normal", rule="N1", region="none",
                                          explanation="Looks like a reflection."))]
    r = result(True)
    text = LLMExplainer(make_openai_llm(), rules).explain(r, list(r.regions))
    assert r.is_anomalous and r.verdict == "anomalous"  # numeric verdict untouched
    assert r.reasoning["verdict"] == "normal" and r.reasoning["numeric_verdict"] == "anomalous"
    # the LLM's text contradicts the verdict that counts: the factual one replaces it, the LLM's stays recorded
    assert text.startswith("anomalous") and "Looks like a reflection" not in text and "was replaced" in text
    assert r.reasoning["llm_explanation"] == "Looks like a reflection."
    assert r.reasoning["replaced"] == "the LLM's verdict is normal, the final verdict is anomalous"
    assert r.reasoning["explanation"].startswith("anomalous")


def test_llm_invented_citation_is_rejected_then_fallback(server, make_openai_llm, rules):
    server.script = [("reply", llm_answer(rule="A999")), ("reply", llm_answer(region="R7"))]
    r = result(True)
    text = LLMExplainer(make_openai_llm(), rules).explain(r, list(r.regions))
    assert r.reasoning["source"] == "fallback" and "Deduction" in r.reasoning["error"]
    assert r.reasoning["cause"] == "invalid answer"
    assert text.startswith("anomalous") and "LLM unavailable, invalid answer: rule-based explanation" in text
    assert r.is_anomalous and r.score == 0.9


def test_llm_unreachable_keeps_result(rules):
    from zsad.reasoning.llm import LLMConfig, make_llm

    llm = make_llm(LLMConfig(backend="openai", model="m", base_url="http://127.0.0.1:9/v1", timeout=0.5,
                             max_retries=1, backoff=0.0))
    r = result(True)
    LLMExplainer(llm, rules).explain(r, list(r.regions))
    assert r.reasoning["source"] == "fallback" and r.reasoning["cause"] == "unreachable"
    assert "cannot reach http://127.0.0.1:9/v1" in r.reasoning["error"]


def test_one_call_per_image(server, make_openai_llm, rules):
    server.default = lambda body: llm_answer()
    explainer = LLMExplainer(make_openai_llm(), rules)
    for _ in range(3):
        r = result(True)
        explainer.explain(r, list(r.regions))
    assert len(server.requests) == 1


def test_deduction_schema_restricts_ids():
    schema = deduction_schema(["N1", "A1"], ["R1"])
    assert schema.model_validate({"verdict": "normal", "rule": "N1", "region": "none", "explanation": "x"})
    with pytest.raises(Exception):
        schema.model_validate({"verdict": "normal", "rule": "N2", "region": "none", "explanation": "x"})


def test_explain_many_keeps_concurrency_requests_in_flight_in_order(server, make_openai_llm, rules):
    """--llm-concurrency requests really in flight at once (the server holds each until 4 are waiting), and the
    explanations come back in input order."""
    import threading

    together = threading.Barrier(4, timeout=20)
    active, peak, lock = [0], [0], threading.Lock()

    def default(body):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        together.wait()  # raises (and the request fails) unless 4 requests are in flight together
        with lock:
            active[0] -= 1
        name = json.loads(body["messages"][1]["content"].split("<<<DATA evidence\n")[1].split("\nDATA>>>")[0])["image"]
        return llm_answer(explanation=f"about {name}")

    server.default = default
    results = [result(True, name=f"img{i}.png") for i in range(8)]
    texts = LLMExplainer(make_openai_llm(concurrency=4, timeout=30), rules).explain_many(results)
    assert peak[0] == 4 and len(server.requests) == 8
    assert [t.split(" [")[0] for t in texts] == [f"about img{i}.png" for i in range(8)]
    assert all(r.reasoning["source"] == "llm" for r in results)


def test_plain_text_and_stated_verdicts():
    from zsad.reasoning.explainers import stated_verdict
    from zsad.reasoning.vocabulary import plain_text

    assert plain_text("**Bold** \x1b[31mred\x1b[0m `code` <i>tag</i> [link](http://x) \\x1b[1m [0m") == \
        "Bold red code tag link"
    assert plain_text("# Title\n- one\n- two") == "Title one two"
    assert plain_text("snake_case and 2*3 stay") == "snake_case and 2*3 stay"
    long = plain_text("word " * 200)
    assert len(long) <= 400 and long.endswith("...")
    assert stated_verdict("The image is normal.") == "normal"
    assert stated_verdict("Verdict: anomalous; the crack breaks rule A1") == "anomalous"
    assert stated_verdict("this product is not defective") == "normal"
    assert stated_verdict("region R1 breaks the rule that a normal bottle is red") is None
    assert stated_verdict("it is normal here but the image is defective") is None  # says both: no statement


def test_rule_explainer_says_when_no_rule_matches(rules, phraser):
    """Issue 17: 'hole', 'scratch' and 'stain' all 'broke rule A1'. A region that looks like nothing the rules
    name gets no invented citation."""
    explainer = RuleExplainer(rules, phraser)
    from zsad.reasoning.rules import Rule

    caps = rules.model_copy(update={"anomaly": [Rule(rule="a bottle without its cap is anomalous",
                                                     phrase="missing cap")]})
    assert RuleExplainer(caps, phraser).matching_rule(["scratch", "stain"]) is None
    r = result(True)
    text = RuleExplainer(caps, phraser).explain(r, list(r.regions))
    assert r.reasoning["rule_id"] == "none" and r.reasoning["rule"] is None
    assert "no rule of anomaly matches region R1" in text and "breaks rule" not in text
    # with every vocabulary defect a rule, each phrase cites its own rule, not the first one
    ids = explainer.rule_ids()
    cited = {phrase: ids[explainer.matching_rule([phrase])].phrase for phrase in ("hole", "scratch", "stain")}
    assert cited == {"hole": "hole", "scratch": "scratch", "stain": "stain"}
