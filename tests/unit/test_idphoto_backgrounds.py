"""Backgrounds as the standards word them: colour families (off-white, light grey, cream) in CIELAB,
exact colours, and the options a preset refuses before any photo is read."""

from __future__ import annotations

import dataclasses

import pytest
from matting.engine.colours import parse_colour
from matting.errors import ConfigError
from matting.idphoto.backgrounds import ColourFamily, lab
from matting.idphoto.portrait import options_from
from matting.idphoto.specs import get_spec, load_specs


def accepts(spec_name: str, colour: str) -> bool:
    return get_spec(spec_name).accepts_background(parse_colour(colour))


def test_lab_matches_the_reference_values():
    assert lab((255, 255, 255)) == pytest.approx((100, 0, 0), abs=0.01)
    assert lab((0, 0, 0)) == pytest.approx((0, 0, 0), abs=0.01)
    assert lab((240, 240, 240)) == pytest.approx((94.77, 0, 0), abs=0.05)
    assert lab((255, 0, 0)) == pytest.approx((53.24, 80.09, 67.20), abs=0.05)  # sRGB red, D65


@pytest.mark.parametrize("colour", ["white", "#FFFFFF", "#F0F0F0", "#F5F5F5", "#E8E8E8", "#FAF7F2", "#F0F8FF"])
def test_us_passport_accepts_white_and_off_white(colour):
    assert accepts("us-passport", colour)


@pytest.mark.parametrize(
    "colour",
    [
        "#D6E4F0",  # light blue: L* 89.8, C* 7.7
        "#BFBFBF",  # grey: L* 77
        "#E0E0E0",  # light grey: L* 89.0
        "#FFFDD0",  # CSS cream: C* 22.7
        "#FAF0E6",  # linen: C* 6.2
        "blue",
        "light-grey",
    ],
)
def test_us_passport_refuses_colours_that_are_not_off_white(colour):
    assert not accepts("us-passport", colour)


def test_uk_passport_accepts_cream_and_light_grey_not_white_or_blue():
    for colour in ("light-grey", "#BFBFBF", "#F0F0F0", "#F5F0E1", "#FFFDD0", "#FAF0E6", "#FDF5E6"):
        assert accepts("uk-passport", colour), colour
    for colour in ("white", "#F5F5F5", "#A9A9A9", "#D6E4F0", "#F3E5AB", "light-blue"):
        assert not accepts("uk-passport", colour), colour


def test_exact_colours_stay_exact():
    """Chinese studio practice and GA 461-2004 name colours, not families."""
    assert accepts("cn-1inch", "blue") and accepts("cn-1inch", "#438EDB") and accepts("cn-1inch", "red")
    assert not accepts("cn-1inch", "#438EDC") and not accepts("cn-1inch", "#F0F0F0")
    assert accepts("cn-id-card", "white") and not accepts("cn-id-card", "#FAFAFA")


def test_every_preset_cites_where_its_backgrounds_come_from():
    specs = load_specs()
    for spec in specs.values():
        assert spec.backgrounds_source, spec.name
    assert "off-white" in specs["us-passport"].backgrounds_source
    assert "cream or plain light grey" in specs["uk-passport"].backgrounds_source
    assert "GA 461-2004" in specs["cn-id-card"].backgrounds_source
    assert "practice" in specs["cn-1inch"].backgrounds_source and "practice" in specs["schengen"].backgrounds_source


def test_a_family_by_name_draws_its_sample():
    options = options_from("us-passport", "off-white")
    assert options.background == (245, 245, 245) and options.background_name == "off-white"
    assert options_from("uk-passport", None).background == (211, 211, 211)  # the first listed: light-grey
    assert options_from("uk-passport", "cream").background == (245, 240, 225)


def test_refused_background_names_what_is_accepted():
    with pytest.raises(ConfigError, match=r"does not accept the background #D6E4F0.*accepted: white, off-white"):
        options_from("us-passport", "#D6E4F0")
    with pytest.raises(ConfigError, match="unknown colour"):
        options_from("us-passport", "blurple")


@pytest.mark.parametrize(
    "spec,kb_max,kb_min,message",
    [
        ("us-passport", 241, None, "above us-passport's limit of 240 KB"),
        ("cn-id-card", None, 13, "below cn-id-card's minimum of 14 KB"),
        ("cn-id-card", 13, None, "at least 14 KB and at most 13 KB"),
        ("cn-1inch", 30, 31, "at least 31 KB and at most 30 KB"),
        ("cn-1inch", 0, None, "kb_max must be positive"),
        ("cn-1inch", None, -1, "kb_min must be positive"),
    ],
)
def test_kb_limits_that_widen_the_preset_or_leave_nothing_are_refused(spec, kb_max, kb_min, message):
    with pytest.raises(ConfigError, match=message):
        options_from(spec, None, kb_max=kb_max, kb_min=kb_min)


def test_kb_limits_inside_the_preset_are_fine():
    assert options_from("us-passport", None, kb_max=240).limits_kb == (None, 240)
    assert options_from("us-passport", None, kb_max=100, kb_min=20).limits_kb == (20, 100)
    assert options_from("cn-id-card", None, kb_max=18, kb_min=15).limits_kb == (15, 18)
    assert options_from("cn-1inch", None, kb_max=500).limits_kb == (None, 500)  # no limit of its own


def test_the_report_rule_uses_the_same_acceptance():
    """One rule: options built by hand (not through options_from) are judged by the same function."""
    from matting.idphoto.compose import IdPhotoOptions
    from matting.idphoto.report import _output_rules

    spec = get_spec("us-passport")
    for colour, passed in (("#F0F0F0", True), ("#D6E4F0", False)):
        options = IdPhotoOptions(spec, parse_colour(colour), colour)
        rule = next(r for r in _output_rules(spec, options, [600, 600], 0.0) if r["rule"] == "background_colour")
        assert rule["passed"] is passed and "off-white" in rule["source"]


def write_catalogue(tmp_path, monkeypatch, text: str) -> None:
    extra = tmp_path / "mine.yaml"
    extra.write_text(text)
    monkeypatch.setenv("AIRFLOW__MATTING__IDPHOTO_SPECS", str(extra))


BADGE = (
    "specs:\n  badge:\n    title: Badge\n    width_px: 300\n    height_px: 400\n    dpi: 300\n"
    "    head_ratio: [0.5, 0.7]\n    top_margin_ratio: [0.05, 0.15]\n"
)


def test_user_catalogues_add_families(tmp_path, monkeypatch):
    write_catalogue(
        tmp_path,
        monkeypatch,
        "colour_families:\n  pale-blue:\n    lightness: [85, 98]\n    chroma: [4, 15]\n    hue: [220, 280]\n"
        "    sample: '#D6E4F0'\n" + BADGE + "    backgrounds: [pale-blue, white]\n",
    )
    spec = get_spec("badge")
    assert spec.accepts_background(parse_colour("#D6E4F0")) and spec.accepts_background((255, 255, 255))
    assert not spec.accepts_background(parse_colour("#F0F0F0"))
    assert options_from("badge", None).background == (214, 228, 240)


@pytest.mark.parametrize(
    "family,message",
    [
        ("    lightness: [95, 90]\n    chroma: [0, 5]\n    sample: white\n", "lightness must be"),
        ("    lightness: [90, 101]\n    chroma: [0, 5]\n    sample: white\n", "lightness must be"),
        ("    lightness: 90\n    chroma: [0, 5]\n    sample: white\n", "lightness must be"),
        ("    lightness: [90, 100]\n    sample: white\n", "missing keys"),
        ("    lightness: [90, 100]\n    chroma: [0, 5]\n    sample: white\n    tint: warm\n", "unknown keys"),
        ("    lightness: [90, 100]\n    chroma: [0, 5]\n    sample: '#000000'\n", "lies outside"),
        ("    lightness: [90, 100]\n    chroma: [0, 5]\n    sample: blurple\n", "unknown colour"),
    ],
)
def test_a_malformed_family_is_refused_at_load(tmp_path, monkeypatch, family, message):
    write_catalogue(tmp_path, monkeypatch, "colour_families:\n  bad:\n" + family + BADGE)
    with pytest.raises(ConfigError, match=message):
        load_specs()


def test_a_background_that_is_neither_family_nor_colour_is_refused_at_load(tmp_path, monkeypatch):
    write_catalogue(tmp_path, monkeypatch, BADGE + "    backgrounds: [eggshell-ish]\n")
    with pytest.raises(ConfigError, match="spec badge: background 'eggshell-ish'"):
        load_specs()
    write_catalogue(tmp_path, monkeypatch, BADGE + "    backgrounds: []\n")
    with pytest.raises(ConfigError, match="at least one"):
        load_specs()


def test_spec_keys_stay_closed():
    with pytest.raises(ConfigError, match="unknown keys"):
        type(get_spec("icao")).from_dict("x", {**_minimal(), "families": []})
    with pytest.raises(ConfigError, match="unknown keys"):
        type(get_spec("icao")).from_dict("x", {**_minimal(), "background_families": ["off-white"]})


def test_hue_band_wraps_through_zero():
    reds = ColourFamily("pinkish", (50, 100), (5, 100), (255, 200, 200), hue=(340, 40))
    assert reds.contains((255, 200, 200)) and not reds.contains((200, 255, 200))
    assert dataclasses.replace(reds, hue=None).contains((200, 255, 200))


def _minimal() -> dict:
    return {"title": "x", "width_px": 1, "height_px": 1, "dpi": 1, "head_ratio": [0, 1], "top_margin_ratio": [0, 1]}
