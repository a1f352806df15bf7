"""Objective: the selection maths, checked against values computed by hand."""
import pytest

from visualcritic_core.objective import Objective
from visualcritic_core.report import QualityReport


def report(mos=3.0, ai=None, **attributes):
    return QualityReport(mos=mos, attributes=attributes, ai_generated=ai)


def test_default_is_mos():
    assert Objective().score(report(mos=4.2, sharpness=1.0)) == pytest.approx(4.2)


def test_weighted_mean_of_mos_and_attribute():
    objective = Objective(mos_weight=1.0, attribute_weights={"sharpness": 0.5})
    # (1·3 + 0.5·5) / 1.5
    assert objective.score(report(mos=3.0, sharpness=5.0)) == pytest.approx(5.5 / 1.5)


def test_negative_weight_means_less_is_better():
    objective = Objective(mos_weight=1.0, attribute_weights={"noisiness": -1.0})
    # utility of noisiness 2 is 6 - 2 = 4; (3 + 4) / 2
    assert objective.score(report(mos=3.0, noisiness=2.0)) == pytest.approx(3.5)
    assert objective.score(report(mos=3.0, noisiness=1.0)) > objective.score(report(mos=3.0, noisiness=5.0))


def test_target_is_best_at_the_target():
    objective = Objective(mos_weight=0.0, attribute_weights={"brightness": 1.0}, attribute_targets={"brightness": 3.0})
    assert objective.score(report(brightness=3.0)) == pytest.approx(5.0)
    assert objective.score(report(brightness=4.5)) == pytest.approx(3.5)
    assert objective.score(report(brightness=1.5)) == pytest.approx(3.5)


def test_photo_preference_both_ways():
    prefer_photo = Objective(mos_weight=1.0, photo_preference=1.0)
    # photo utility 1 + 4·(1 - 0.25) = 4; (2 + 4) / 2
    assert prefer_photo.score(report(mos=2.0, ai=0.25)) == pytest.approx(3.0)
    prefer_ai = Objective(mos_weight=1.0, photo_preference=-2.0)
    # utility 1 + 4·0.25 = 2, weight 2; (2 + 2·2) / 3
    assert prefer_ai.score(report(mos=2.0, ai=0.25)) == pytest.approx(2.0)


def test_unjudged_items_drop_out_and_weights_renormalise():
    objective = Objective(mos_weight=1.0, attribute_weights={"sharpness": 3.0}, photo_preference=1.0)
    assert objective.score(report(mos=2.0)) == pytest.approx(2.0)  # only MOS judged
    nothing = Objective(mos_weight=0.0, attribute_weights={"sharpness": 1.0})
    assert nothing.score(report(mos=4.0)) == pytest.approx(4.0)  # falls back to MOS


def test_minimums_and_maximums():
    objective = Objective(minimums={"mos": 3.0, "sharpness": 2.0}, maximums={"noisiness": 2.5})
    assert objective.passes(report(mos=3.0, sharpness=2.0, noisiness=2.5))
    assert not objective.passes(report(mos=2.9, sharpness=5.0, noisiness=1.0))
    assert not objective.passes(report(mos=4.0, sharpness=5.0, noisiness=3.0))
    assert not objective.passes(report(mos=4.0, noisiness=1.0))  # unjudged sharpness fails its limit
    on_score = Objective(attribute_weights={"sharpness": 1.0}, minimums={"score": 3.0})
    assert on_score.passes(report(mos=3.0, sharpness=3.0))
    assert not on_score.passes(report(mos=3.0, sharpness=2.0))


def test_rank_puts_failing_last_and_keeps_ties_in_order():
    objective = Objective(minimums={"sharpness": 2.0})
    reports = [
        report(mos=5.0, sharpness=1.0),  # best MOS but fails
        report(mos=3.0, sharpness=3.0),
        report(mos=4.0, sharpness=3.0),
        report(mos=3.0, sharpness=4.0),  # ties with index 1
        report(mos=1.0),  # unjudged: fails
    ]
    assert objective.rank(reports) == [2, 1, 3, 0, 4]
    assert Objective().rank([]) == []


def test_parse_and_to_text_round_trip():
    text = "mos=1, sharpness=0.5, noisiness=-0.5, brightness@3=0.3, photo=1, min:mos=3, max:noisiness=2.5"
    objective = Objective.parse(text)
    assert objective.mos_weight == 1.0
    assert objective.attribute_weights == {"sharpness": 0.5, "noisiness": -0.5, "brightness": 0.3}
    assert objective.attribute_targets == {"brightness": 3.0}
    assert objective.photo_preference == 1.0
    assert objective.minimums == {"mos": 3.0} and objective.maximums == {"noisiness": 2.5}
    assert Objective.parse(objective.to_text()) == objective


def test_parse_defaults():
    assert Objective.parse("") == Objective()
    assert Objective.parse(None) == Objective()
    only_limits = Objective.parse("min:mos=3")
    assert only_limits.mos_weight == 1.0 and only_limits.minimums == {"mos": 3.0}
    assert Objective.parse("sharpness=1").mos_weight == 0.0  # named weights replace the MOS default


@pytest.mark.parametrize(
    "text, match",
    [
        ("sharpness", "expected NAME=NUMBER"),
        ("sharpness=high", "expected NAME=NUMBER"),
        ("mos=nan", "expected NAME=NUMBER"),
        ("sharpnes=1", "unknown name 'sharpnes'"),
        ("brightness@bright=1", "target must be a number"),
        ("brightness@7=1", "target for 'brightness' must lie in 1..5"),
        ("min:quality=3", "unknown score 'quality'"),
        ("mos=-1", "mos_weight"),
    ],
)
def test_parse_errors_are_clear(text, match):
    with pytest.raises(ValueError, match=match):
        Objective.parse(text)


def test_coerce():
    assert Objective.coerce(None) == Objective()
    assert Objective.coerce("mos=2") == Objective(mos_weight=2.0)
    objective = Objective(photo_preference=1.0)
    assert Objective.coerce(objective) is objective
    assert Objective.coerce({"mos_weight": 0.5}) == Objective(mos_weight=0.5)
    with pytest.raises(TypeError):
        Objective.coerce(3)


def test_constructor_rejects_nonsense():
    with pytest.raises(ValueError, match="no weight on anything"):
        Objective(mos_weight=0.0)
    with pytest.raises(ValueError, match="unknown attribute 'blur'"):
        Objective(attribute_weights={"blur": 1.0})


def test_alignment_weight_and_limit():
    objective = Objective.parse("mos=1, alignment=3, min:alignment=3")
    assert objective.alignment_weight == 3.0 and objective.minimums == {"alignment": 3.0}
    # (1·2 + 3·5) / 4
    assert objective.score(QualityReport(mos=2.0, alignment=5.0)) == pytest.approx(17 / 4)
    on_prompt, off_prompt = QualityReport(mos=3.0, alignment=4.5), QualityReport(mos=4.0, alignment=1.5)
    assert objective.rank([off_prompt, on_prompt]) == [1, 0]
    assert not objective.passes(off_prompt) and objective.passes(on_prompt)
    # without a prompt nobody judged alignment: the term drops out, and its limit fails
    unprompted = QualityReport(mos=4.0)
    assert objective.score(unprompted) == pytest.approx(4.0) and not objective.passes(unprompted)
    assert Objective.parse(objective.to_text()) == objective


def test_alignment_alone_and_negative_alignment():
    only = Objective.parse("alignment=1")
    assert only.mos_weight == 0 and only.score(QualityReport(mos=1.0, alignment=4.0)) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="alignment_weight must be a finite number ≥ 0"):
        Objective.parse("alignment=-1")
