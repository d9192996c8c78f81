"""Discovery's settings are declared once (``DiscoverySettings``): the flags of ``zsad discover``, the
``--discover-*`` flags of detect and eval, ``Detector.discover``'s options and the recorded settings all come
from the declarations."""
from __future__ import annotations

import dataclasses

import pytest

from zsad.discovery.settings import DiscoverySettings, discovery_settings, discovery_table, settings_from_args
from zsad.errors import ZsadError


def _parser(command: str):
    from zsad.cli.main import build_parser

    parser = build_parser()
    return parser, next(a for a in parser._subparsers._group_actions[0].choices.items() if a[0] == command)[1]


def _flags(subparser) -> set[str]:
    return {flag for action in subparser._actions for flag in action.option_strings}


def test_every_field_is_a_flag_of_discover_detect_and_eval():
    names = [f.name for f in dataclasses.fields(DiscoverySettings)]
    assert set(discovery_table()) == set(names)
    _, discover = _parser("discover")
    _, detect = _parser("detect")
    _, evaluate = _parser("eval")
    for field_name in names:
        plain, prefixed = "--" + field_name.replace("_", "-"), "--discover-" + field_name.replace("_", "-")
        assert plain in _flags(discover), plain
        assert prefixed in _flags(detect) and prefixed in _flags(evaluate), prefixed
    assert "--discover" in _flags(detect) and "--discover" in _flags(evaluate)
    assert "--no-discover-sheets" in _flags(detect) and "--no-sheets" in _flags(discover)


def test_detect_flags_parse_into_the_settings():
    parser, _ = _parser("detect")
    args = parser.parse_args(["detect", "x.png", "--discover-types", "3", "--discover-estimator", "eigengap",
                              "--discover-phrases", "hole", "crack", "--no-discover-sheets"])
    settings, given = settings_from_args(args, "discover_")
    assert given and settings == DiscoverySettings(types=3, estimator="eigengap", phrases=("hole", "crack"),
                                                   sheets=False)
    plain = parser.parse_args(["detect", "x.png"])
    assert settings_from_args(plain, "discover_") == (DiscoverySettings(), False)
    with pytest.raises(SystemExit):
        parser.parse_args(["detect", "x.png", "--discover-types", "0"])


def test_python_options_are_coerced_and_checked():
    settings = discovery_settings(types=2.0, phrases=["hole"], seed="3")
    assert (settings.types, settings.phrases, settings.seed) == (2, ("hole",), 3)
    assert discovery_settings(settings, k_max=4) == dataclasses.replace(settings, k_max=4)
    with pytest.raises(ZsadError, match="unknown discovery option.*typo"):
        discovery_settings(typo=1)
    with pytest.raises(ZsadError, match="types=0"):
        discovery_settings(types=0)
    with pytest.raises(ZsadError, match="estimator 'kmeans'"):
        DiscoverySettings(estimator="kmeans")
    with pytest.raises(ZsadError, match="naming"):
        DiscoverySettings(naming="gpt")
    described = DiscoverySettings(phrases=("hole",)).describe()
    assert described["phrases"] == ["hole"] and set(described) == set(discovery_table())


def test_naming_llm_without_an_llm_is_refused_with_the_fix():
    from zsad.discovery.configured import check_naming, choose_namer

    assert check_naming(DiscoverySettings(), None) is False and choose_namer(DiscoverySettings(), None) is None
    with pytest.raises(ZsadError, match="--discover-naming llm needs an LLM: give --llm-base-url"):
        check_naming(DiscoverySettings(naming="llm"), None, "--discover-naming")
