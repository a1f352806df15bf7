"""QualityReport: the one result type; validation must catch what a broken critic emits."""
import json
import math

import pytest

from visualcritic_core.report import ATTRIBUTES, QualityReport


def test_json_round_trip_keeps_everything():
    report = QualityReport(
        mos=3.25,
        attributes={"brightness": 2.0, "sharpness": 4.5},
        ai_generated=0.25,
        description="soft focus, slightly dark",
        critic="signal",
    )
    again = QualityReport.from_json(report.to_json())
    assert again == report
    data = json.loads(report.to_json())
    assert set(data["attributes"]) == set(ATTRIBUTES)
    assert data["attributes"]["contrast"] is None  # missing attributes are explicit None


def test_from_dict_minimal_and_defaults():
    report = QualityReport.from_dict({"mos": 5})
    assert report.mos == 5.0 and report.ai_generated is None and report.critic == ""
    assert all(report.attributes[a] is None for a in ATTRIBUTES)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"mos": 5.5}, "mos must lie in"),
        ({"mos": 0.0}, "mos must lie in"),
        ({"mos": math.nan}, "mos must lie in"),
        ({"mos": math.inf}, "mos must lie in"),
        ({"mos": "4"}, "must be a number"),
        ({"mos": True}, "must be a number"),
        ({"mos": 3, "attributes": {"sharpnes": 3}}, "unknown names \\['sharpnes'\\]"),
        ({"mos": 3, "attributes": {"contrast": 7}}, "contrast"),
        ({"mos": 3, "ai_generated": 1.5}, "ai_generated"),
        ({"mos": 3, "ai_generated": -0.1}, "ai_generated"),
        ({"mos": 3, "description": 12}, "description"),
    ],
)
def test_validation_errors_name_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        QualityReport(**kwargs)


def test_tiny_rounding_overshoot_is_clamped_not_rejected():
    report = QualityReport(mos=5.0000001, attributes={"noisiness": 0.9999999}, ai_generated=1.0000000001)
    assert report.mos == 5.0 and report.attributes["noisiness"] == 1.0 and report.ai_generated == 1.0


def test_from_dict_rejects_non_reports():
    for bad in ([], {"score": 3}, "mos=3"):
        with pytest.raises(ValueError, match="not a QualityReport"):
            QualityReport.from_dict(bad)


def test_get_by_name():
    report = QualityReport(mos=2.5, attributes={"noisiness": 4.0}, ai_generated=0.75)
    assert report.get("mos") == 2.5
    assert report.get("noisiness") == 4.0
    assert report.get("sharpness") is None
    assert report.get("ai_generated") == 0.75
    with pytest.raises(KeyError, match="unknown score 'quality'"):
        report.get("quality")


def test_alignment_raw_scores_and_sources_survive_json():
    report = QualityReport(
        mos=3.5, ai_generated=0.9, critic="signal+det", alignment=4.25,
        raw_scores={"alignment": 0.71, "ai_generated": 2.2},
        sources={"mos": "signal", "ai_generated": "det", "alignment": "clip"},
    )
    again = QualityReport.from_json(report.to_json())
    assert again == report
    assert again.source("ai_generated") == "det" and again.source("alignment") == "clip"
    assert again.source("sharpness") is None  # not judged: nobody said it


def test_old_dicts_without_the_new_fields_still_load():
    old = {"mos": 4, "attributes": {}, "ai_generated": None, "description": None, "critic": "signal"}
    report = QualityReport.from_dict(old)
    assert report.alignment is None and report.raw_scores == {} and report.sources == {}
    assert report.source("mos") == "signal"  # a single critic said everything it said
    assert report.get("alignment") is None


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"alignment": 5.5}, "alignment must lie in"),
        ({"alignment": 0.2}, "alignment must lie in"),
        ({"raw_scores": {"quality": 1.0}}, "unknown item 'quality'"),
        ({"raw_scores": {"mos": float("nan")}}, "finite number"),
        ({"sources": {"mos": 3}}, "sources must map"),
        ({"sources": {"beauty": "x"}}, "sources must map"),
    ],
)
def test_new_fields_are_validated(kwargs, match):
    with pytest.raises(ValueError, match=match):
        QualityReport(mos=3, **kwargs)
