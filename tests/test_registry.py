"""load_critic: one entry point, helpful errors for the specs people mistype."""
import pytest

from visualcritic_core import available_critics, load_critic, register_critic
from visualcritic_core.critics.base import Critic


def test_signal_is_registered_and_described():
    critics = available_critics()
    assert "signal" in critics and "no download" in critics["signal"]


def test_unknown_name_suggests_the_close_one():
    with pytest.raises(ValueError, match=r"unknown critic 'sgnal'\. Did you mean 'signal'\?"):
        load_critic("sgnal")
    with pytest.raises(ValueError, match="unknown critic 'zzzz'. Registered critics: .*signal"):
        load_critic("zzzz")


@pytest.mark.parametrize("spec", ["./no/such/critic", "~/no-such-critic-folder", "/tmp/definitely/missing"])
def test_missing_folder_is_a_clear_error(spec):
    with pytest.raises(ValueError, match="critic folder .* does not exist"):
        load_critic(spec)


@pytest.mark.parametrize("spec", ["", "   ", None, 3])
def test_empty_or_non_text_spec(spec):
    with pytest.raises(ValueError, match="non-empty string"):
        load_critic(spec)


def test_reregistering_a_name_elsewhere_is_refused():
    register_critic("signal", "visualcritic_core.critics.signal:SignalCritic", "same target is fine")
    with pytest.raises(ValueError, match="already registered"):
        register_critic("signal", "somewhere.else:Critic", "clash")


def test_load_signal_builds_a_critic():
    critic = load_critic("signal", device="cpu")
    assert isinstance(critic, Critic) and critic.spec == "signal"
    assert "mos" in critic.capabilities and str(critic.device) == "cpu"
