"""Rule induction: CLIP description, offline and LLM induction, voting, save/load, prompt sets."""
import json

import pytest
import torch

from zsad.errors import ZsadError
from zsad.reasoning.definition import parse_rules
from zsad.reasoning.rules import (
    ImageDescription, ProposedRule, RuleBatch, Rules, RulesHead, aggregate, describe_with_clip, induce_rules,
)
from zsad.scoring.text_heads import load_text_head


def descriptions():
    red = dict(objects=["bottle"], materials=["glass"], colours=["red"], shapes=["round"], surfaces=["shiny"])
    odd = dict(red, colours=["blue"])
    return [ImageDescription(**red), ImageDescription(**red), ImageDescription(**odd), ImageDescription(**red)]


def test_vote_keeps_majority_rules():
    r = lambda phrase: ProposedRule(rule=f"rule {phrase}", phrase=phrase)  # noqa: E731
    batches = [RuleBatch(normal=[r("red colour"), r("glass")], anomaly=[r("crack")]),
               RuleBatch(normal=[r("Red  colour"), r("blue")], anomaly=[r("crack"), r("dent")]),
               RuleBatch(normal=[r("glass")], anomaly=[r("crack")])]
    normal, anomaly, min_votes = aggregate(batches)
    assert min_votes == 2
    assert [(x.phrase, x.votes) for x in normal] == [("red colour", 2), ("glass", 2)]
    assert [(x.phrase, x.votes) for x in anomaly] == [("crack", 3)]


def test_offline_induction_save_load(tmp_path):
    rules = induce_rules(descriptions(), llm=None, batches=2, object_name="bottle",
                         definition=parse_rules("stains on the label are defects; reflections are normal"))
    assert rules.source == "offline" and rules.batches == 2 and rules.references == 4
    phrases = [r.phrase for r in rules.normal]
    assert "red colour" in phrases and "glass material" in phrases and "reflections" in phrases
    assert "blue colour" not in phrases  # proposed by one batch of two: no majority
    assert rules.anomaly[0].phrase == "stains on the label" and any(r.phrase == "crack" for r in rules.anomaly)
    path = rules.save(tmp_path / "rules.yaml")
    text = path.read_text()
    assert text.startswith("# zsad rules") and "a normal bottle is red in colour" in text
    assert Rules.load(path) == rules
    edited = text.replace("a normal bottle is red in colour", "a normal bottle is dark red")
    path.write_text(edited)
    assert Rules.load(path).normal[[r.phrase for r in rules.normal].index("red colour")].rule == "a normal bottle is dark red"
    (tmp_path / "bad.yaml").write_text("format: zsad.rules/1\nnormal: 3\n")
    with pytest.raises(ZsadError, match="malformed"):
        Rules.load(tmp_path / "bad.yaml")


def test_rules_feed_the_text_head(tiny_clip, tmp_path):
    rules = induce_rules(descriptions(), object_name="bottle")
    ps = rules.prompt_set("winclip")
    assert ps.anomalous[0] == "{} with " + rules.anomaly[0].phrase
    assert "{} with red colour" in ps.normal
    head = load_text_head(f"rules:{rules.save(tmp_path / 'r.yaml')}", tiny_clip)
    assert isinstance(head, RulesHead) and head.embeddings("bottle").shape == (2, tiny_clip.embed_dim)


def test_describe_with_clip_matches_direct_retrieval(tiny_clip):
    image = torch.rand(2, 3, tiny_clip.input_size, tiny_clip.input_size)
    with torch.inference_mode():
        cls = tiny_clip(image).cls
    out = describe_with_clip(tiny_clip, cls, top_k=1)
    assert len(out) == 2 and all(len(d.colours) == 1 for d in out)
    from zsad.reasoning.vocabulary import load_vocabulary

    words = list(load_vocabulary()["colours"])
    with torch.inference_mode():
        text = torch.nn.functional.normalize(tiny_clip.encode_text([f"a photo of a {w} object." for w in words]), dim=-1)
    direct = (torch.nn.functional.normalize(cls, dim=-1) @ text.T).argmax(-1)
    assert [d.colours[0] for d in out] == [words[i] for i in direct.tolist()]


def test_llm_induction_by_vote_with_one_failed_batch(server, make_openai_llm):
    batch = {"normal": [{"rule": "a normal bottle is red", "phrase": "red colour"}],
             "anomaly": [{"rule": "a bottle with a crack is anomalous", "phrase": "crack"}]}
    server.script = [("reply", json.dumps(batch)), ("reply", json.dumps(batch)),
                     ("reply", "not json"), ("reply", "still not json")]
    rules = induce_rules(descriptions(), llm=make_openai_llm(), batches=3, object_name="bottle")
    assert rules.source == "llm (1/3 batches offline)"
    assert [(r.phrase, r.votes) for r in rules.normal][0] == ("red colour", 2)
    assert rules.anomaly[0].phrase == "crack" and rules.anomaly[0].votes == 3
    user = server.requests[0]["messages"][1]["content"]
    assert "<<<DATA descriptions" in user and '"bottle"' in user
