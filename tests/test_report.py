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
