"""Prompt rewriting by a language model: the critic's judgement turned into a better prompt.

`LanguageModelProposer` is a `tune_prompt` proposer (see `proposers.py`) that shows a chat
model what the critic measured on a round — the scores, the weaknesses the rules found, the
critic's own words about the best image — and asks it to rewrite the prompt. Two kinds of
model can answer:

- the LMM critic itself (`proposer="critic"`): it has seen the image, so its rewrite can
  address what the picture shows, not only the numbers;
- any chat LLM loaded with transformers' own classes (`proposer="llm:<hub id or folder>"`,
  `load_chat_model`), e.g. a small instruct model.

The reply must be one JSON object (`parse_rewrite`: "positive", optional "negative",
"steps_factor", "cfg_delta"); anything else is refused and the rule proposer's revision is
used instead, and the revision says so. What the model may change is bounded, and the loop
(`generation.tune_prompt`) keeps a rewrite only if it keeps the user's subject and the next
round's objective does not fall (`keeps_subject`, and the guards there).
"""
from __future__ import annotations

import json
import math
import os
import re
import string
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, Sequence

from .objective import Objective
from .prompt_feedback import RULES, PromptRevision, median_score, propose_revision
from .report import ATTRIBUTES

if TYPE_CHECKING:
    from .critics.base import Critic
    from .generation.results import GenerationResult

SYSTEM_PROMPT = (
    "You are an expert at writing prompts for text-to-image diffusion models. You rewrite a prompt so that "
    "the next images fix the weaknesses an image-quality critic measured, without changing what the user "
    "asked to see."
)

INSTRUCTION = """\
The user's original prompt (its subject must stay): "{original_prompt}"
The prompt used for these images: "{prompt}"
The negative prompt used: "{negative_prompt}"
What the quality critic measured on this round's {count} images (medians, 1-5 scales):
{scores}
The critic's words about the best image: {description}
Weaknesses found: {weaknesses}
What counts as better (the selection objective): {objective}

Rewrite the prompt to fix these weaknesses. Keep every subject of the original prompt; change style,
lighting, detail and composition words only. At most {max_words} words.
Reply with one JSON object and nothing else, for example:
{{"positive": "...", "negative": "...", "steps_factor": 1.0, "cfg_delta": 0.0}}
"negative" is the new negative prompt; "steps_factor" (1 to 2) multiplies the sampling steps and
"cfg_delta" (-3 to 3) is added to the guidance scale; leave out what should not change."""
"""The default request; override with `LanguageModelProposer(instruction=...)`. It is
formatted with the fields of `INSTRUCTION_FIELDS`."""

INSTRUCTION_FIELDS = ("original_prompt", "prompt", "negative_prompt", "count", "scores", "description",
                      "weaknesses", "objective", "max_words")

_SCORE_MEANINGS = {
    "mos": "overall quality (MOS), higher is better",
    "brightness": "brightness, 5 = very bright",
    "colorfulness": "colorfulness, 5 = very colourful",
    "contrast": "contrast, 5 = very contrasty",
    "noisiness": "noisiness, 5 = very noisy",
    "sharpness": "sharpness, 5 = very sharp",
}
_REPLY_KEYS = {"positive", "negative", "steps_factor", "cfg_delta"}
STEPS_FACTOR_RANGE = (1.0, 2.0)
CFG_DELTA_RANGE = (-3.0, 3.0)


class RewriteParseError(ValueError):
    """A language model's reply that is not the JSON rewrite asked for."""


@dataclass(frozen=True)
class Rewrite:
    """A parsed reply: the new prompts and sampling nudges."""

    positive: str
    negative: str | None = None
    steps_factor: float = 1.0
    cfg_delta: float = 0.0


def parse_rewrite(reply: str) -> Rewrite:
    """The reply as a `Rewrite`, strictly: one JSON object (a ```json fence around it is
    allowed), keys among positive / negative / steps_factor / cfg_delta, "positive" a
    non-empty single line, the numbers inside their ranges. Anything else raises
    `RewriteParseError` saying what was wrong."""
    text = reply.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", text, flags=re.DOTALL)
    if fenced:
        text = fenced.group(1)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise RewriteParseError(f"not a JSON object ({err.msg} at character {err.pos}): {_clip(reply)!r}") from None
    if not isinstance(data, dict):
        raise RewriteParseError(f"expected a JSON object, got {type(data).__name__}: {_clip(reply)!r}")
    unknown = set(data) - _REPLY_KEYS
    if unknown:
        raise RewriteParseError(f"unexpected keys {sorted(unknown)}; allowed: {sorted(_REPLY_KEYS)}")
    positive = data.get("positive")
    if not isinstance(positive, str) or not positive.strip() or "\n" in positive.strip():
        raise RewriteParseError(f"'positive' must be a non-empty one-line string, got {positive!r}")
    negative = data.get("negative")
    if negative is not None and (not isinstance(negative, str) or "\n" in negative.strip()):
        raise RewriteParseError(f"'negative' must be a one-line string, got {negative!r}")
    numbers = {}
    for key, (low, high), default in (("steps_factor", STEPS_FACTOR_RANGE, 1.0), ("cfg_delta", CFG_DELTA_RANGE, 0.0)):
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise RewriteParseError(f"'{key}' must be a number in {low:g}..{high:g}, got {value!r}")
        numbers[key] = float(value)
    return Rewrite(positive.strip(), None if negative is None else negative.strip(), **numbers)


def _clip(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


# -- what keeps the user's subject ------------------------------------------------------
_STOPWORDS = frozenset(
    "a an the of in on at to for with and or but by from into onto over under near as is are be this that "
    "these those its it his her their very photo photograph picture image shot style".split()
)
_STYLE_WORDS = frozenset(
    word
    for rule in RULES
    for term in (*rule.positive, *rule.negative)
    for word in term.lower().split()
)
"""Words the rules add or ban: quality vocabulary, not subject matter."""


def subject_words(prompt: str) -> list[str]:
    """The content words of a prompt: lowercased words minus stopwords and the quality
    vocabulary of the rules, in order, without repeats."""
    words = re.findall(r"[\w'-]+", prompt.lower())
    seen: list[str] = []
    for word in words:
        if word not in _STOPWORDS and word not in _STYLE_WORDS and not word.isdigit() and word not in seen:
            seen.append(word)
    return seen


def _mentions(text_words: set[str], word: str) -> bool:
    """A word counts as kept in its singular or plural form ("fox"/"foxes", "cat"/"cats")."""
    forms = {word, word + "s", word + "es", word[:-1] if word.endswith("s") else word,
             word[:-2] if word.endswith("es") else word}
    return bool(forms & text_words)


def keeps_subject(original: str, rewritten: str, *, max_words: int = 75, keep_share: float = 2 / 3) -> str | None:
    """Why `rewritten` does not keep the subject of `original` (None when it does): at
    least `keep_share` of the original's content words must still be there (all of them
    when there are at most two), and the rewrite must stay within `max_words` words
    (CLIP text encoders read 77 tokens)."""
    words = re.findall(r"[\w'-]+", rewritten.lower())
    if len(words) > max_words:
        return f"it has {len(words)} words, more than {max_words}"
    subject = subject_words(original)
    if not subject:
        return None
    present = set(words)
    missing = [w for w in subject if not _mentions(present, w)]
    needed = len(subject) if len(subject) <= 2 else math.ceil(len(subject) * keep_share)
    if len(subject) - len(missing) < needed:
        return f"it drops the subject word(s) {', '.join(repr(w) for w in missing)} of the original prompt"
    return None


# -- chat models --------------------------------------------------------------------------
class ChatModel(Protocol):
    """Anything that answers a system + user message with text."""

    spec: str

    def chat(self, system: str, user: str, *, max_new_tokens: int) -> str: ...


class TransformersChatModel:
    """A chat LLM through transformers' own classes (`AutoTokenizer`,
    `AutoModelForCausalLM`), its chat template, greedy decoding. Build with `load_chat_model`."""

    def __init__(self, spec: str, model: Any, tokenizer: Any) -> None:
        self.spec = spec
        self.model = model
        self.tokenizer = tokenizer

    def chat(self, system: str, user: str, *, max_new_tokens: int) -> str:
        import torch

        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        if getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        else:  # a base model: plain text, answer after "Answer:"
            text = f"{system}\n\n{user}\n\nAnswer: "
        inputs = self.tokenizer(text, return_tensors="pt", add_special_tokens=False).to(self.model.device)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        with torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                                      pad_token_id=pad)
        return self.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()

    def release(self) -> None:
        """Weights to the CPU (for hosts that need the GPU back)."""
        self.model.to("cpu")


def load_chat_model(spec: str, device: Any = None, dtype: Any = None) -> TransformersChatModel:
    """A chat LLM from a hub id or a local folder, loaded as users load one
    (`from_pretrained`). Device and dtype as for critics (automatic by default)."""
    from .critics.base import resolve_device, resolve_dtype

    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"a language model spec must be a hub id or folder, got {spec!r}")
    spec = os.path.expanduser(spec.strip())
    if (os.path.sep in spec or spec.startswith(".")) and not os.path.isdir(spec):
        raise ValueError(f"language model folder {spec!r} does not exist")
    device = resolve_device(device)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(spec)
        model = AutoModelForCausalLM.from_pretrained(spec, dtype=resolve_dtype(dtype, device))
    except (OSError, ValueError, KeyError) as err:
        hint = "" if os.path.isdir(spec) else " Download it first (e.g. `hf download ID`) or give a local folder."
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        raise ValueError(f"language model {spec!r} could not be loaded as a chat LLM: {first}.{hint}") from None
    return TransformersChatModel(spec, model.to(device).eval(), tokenizer)


class CriticChat:
    """The LMM critic as the rewriting model: it answers about the round's best image."""

    def __init__(self, critic: "Critic") -> None:
        if not callable(getattr(critic, "chat", None)):
            raise ValueError(
                f"proposer 'critic' needs a critic that can answer in words (an LMM critic); {critic!r} cannot. "
                "Use proposer='llm:<hub id or folder>' with a chat LLM, or 'rules'."
            )
        self.critic = critic
        self.spec = critic.spec
        self.image: Any = None

    def chat(self, system: str, user: str, *, max_new_tokens: int) -> str:
        return self.critic.chat([self.image], f"{system}\n\n{user}", max_new_tokens=max_new_tokens)[0]


# -- the proposer -------------------------------------------------------------------------
def _check_instruction(instruction: str) -> str:
    if not isinstance(instruction, str) or not instruction.strip():
        raise ValueError("the rewriting instruction must be non-empty text")
    fields = {name for _, name, _, _ in string.Formatter().parse(instruction) if name}
    unknown = fields - set(INSTRUCTION_FIELDS)
    if unknown:
        raise ValueError(f"the rewriting instruction uses unknown fields {sorted(unknown)}; "
                         f"it may use {list(INSTRUCTION_FIELDS)}")
    return instruction


def _score_lines(result: "GenerationResult") -> str:
    lines = []
    for item in ("mos", *ATTRIBUTES):
        value = median_score(result.reports, item)
        if value is not None:
            lines.append(f"- {_SCORE_MEANINGS[item]}: {value:.2f}")
    ai = median_score(result.reports, "ai_generated")
    if ai is not None:
        lines.append(f"- probability that it looks AI-generated rather than photographed: {ai:.2f}")
    alignment = [a for a in (getattr(r, "alignment", None) for r in result.reports) if a is not None]
    if alignment:
        lines.append(f"- how well it shows the original prompt (alignment), 5 = fully: {sorted(alignment)[len(alignment) // 2]:.2f}")
    return "\n".join(lines)


@dataclass
class LanguageModelProposer:
    """Ask a language model to rewrite the prompt from the measured report.

    model: a `ChatModel` (e.g. `load_chat_model(...)`), or "critic" to ask the LMM critic
        of the loop about the round's best image.
    instruction: the request template (default `INSTRUCTION`), formatted with
        `INSTRUCTION_FIELDS`; `system_prompt` likewise (default `SYSTEM_PROMPT`).
    max_words: the longest rewrite asked for (and accepted by the loop's subject guard).
    max_new_tokens: the most tokens the model may write per round.

    A reply that `parse_rewrite` refuses falls back to the rule proposer's revision; the
    returned revision then says so in its reasons and records the reply.
    """

    model: Any = "critic"
    instruction: str = INSTRUCTION
    system_prompt: str = SYSTEM_PROMPT
    max_words: int = 60
    max_new_tokens: int = 256

    def __post_init__(self) -> None:
        _check_instruction(self.instruction)
        if self.model != "critic" and not callable(getattr(self.model, "chat", None)):
            raise ValueError(f"model must be 'critic' or a chat model with .chat(system, user), got {self.model!r}")
        if not isinstance(self.max_words, int) or self.max_words < 3:
            raise ValueError(f"max_words must be an int ≥ 3, got {self.max_words!r}")

    @property
    def name(self) -> str:
        return "critic" if self.model == "critic" else f"llm:{getattr(self.model, 'spec', type(self.model).__name__)}"

    def request(self, result: "GenerationResult", objective: Objective, original_prompt: str | None = None) -> str:
        """The text sent to the model for this round."""
        from .proposers import rules_for

        rules = propose_revision(result.reports, result.prompt, result.negative_prompt or "",
                                 rules=rules_for(objective))
        description = result.best_report.description
        return self.instruction.format(
            original_prompt=original_prompt or result.prompt, prompt=result.prompt,
            negative_prompt=result.negative_prompt or "", count=len(result.reports), scores=_score_lines(result),
            description=f'"{description}"' if description else "(none)",
            weaknesses="; ".join(rules.reasons) or "none found by the rules", objective=objective.to_text(),
            max_words=self.max_words,
        )

    def __call__(self, result: "GenerationResult", *, critic: "Critic", objective: Objective,
                 original_prompt: str | None = None) -> PromptRevision:
        from .proposers import RuleProposer

        model = self.model
        if model == "critic":
            model = CriticChat(critic)
            model.image = result.best_image
        reply = model.chat(self.system_prompt, self.request(result, objective, original_prompt),
                           max_new_tokens=self.max_new_tokens)
        try:
            rewrite = parse_rewrite(reply)
        except RewriteParseError as err:
            fallback = RuleProposer()(result, critic=critic, objective=objective)
            fallback.reasons.insert(0, f"the {self.name} reply could not be used ({err}); the rule proposer's "
                                       "revision was used instead")
            fallback.proposer, fallback.reply = "rules (fallback)", reply
            return fallback
        sampling = {}
        if rewrite.steps_factor != 1.0:
            sampling["steps_factor"] = rewrite.steps_factor
        if rewrite.cfg_delta:
            sampling["cfg_delta"] = rewrite.cfg_delta
        negative = rewrite.negative if rewrite.negative is not None else (result.negative_prompt or "")
        return PromptRevision(rewrite.positive, negative, sampling, [f"rewritten by {self.name}"],
                              proposer=self.name, reply=reply, rewrite=True)


def propose_guarded(proposer: Any, result: "GenerationResult", *, critic: "Critic", objective: Objective,
                    original_prompt: str, max_words: int = 75) -> tuple[PromptRevision, dict[str, str] | None]:
    """Ask `proposer` for the next revision of `result`, refusing a prompt that drops the
    subject of `original_prompt` or exceeds `max_words` (the rule proposer's revision is
    returned instead). Returns the revision and, when one was refused, what it was:
    {"prompt", "proposer", "reason"}.

    Proposers that take `original_prompt` (language-model proposers) get the user's own
    prompt, so a rewrite of a rewrite still knows the subject."""
    import inspect

    from .proposers import RuleProposer

    takes_original = "original_prompt" in inspect.signature(proposer).parameters
    extra = {"original_prompt": original_prompt} if takes_original else {}
    revision = proposer(result, critic=critic, objective=objective, **extra)
    drift = keeps_subject(original_prompt, revision.positive, max_words=max_words)
    if drift is None:
        return revision, None
    refused = {"prompt": revision.positive, "proposer": revision.proposer, "reason": drift}
    fallback = RuleProposer()(result, critic=critic, objective=objective)
    fallback.reasons.insert(0, f"the proposed prompt was refused ({drift}); the rule proposer's revision instead")
    fallback.proposer, fallback.reply = "rules (fallback)", revision.reply
    return fallback, refused


def revise_once(reports: Sequence[Any], positive: str, negative: str = "", *, proposer: Any = "rules",
                critic: "Critic | None" = None, images: Sequence[Any] | None = None,
                original_prompt: str | None = None, objective: Objective | str | None = None,
                max_words: int = 75) -> tuple[PromptRevision, dict[str, str] | None]:
    """One revision outside a generation loop (the ComfyUI Prompt Feedback node): the
    reports (and, for `proposer="critic"`, the images they describe) of one batch, the
    prompts that made it, and a proposer — "rules", "critic", a chat model, or any
    proposer callable. The subject guard applies as in `tune_prompt`; the objective guard
    needs a next round, which only a loop has."""
    from .generation.results import GenerationResult
    from .proposers import RuleProposer

    if not reports:
        raise ValueError("revising a prompt needs the reports of at least one image")
    if images is not None and len(images) != len(reports):
        raise ValueError(f"{len(images)} images but {len(reports)} reports; give the images the reports describe")
    if proposer == "rules":
        proposer = RuleProposer()
    elif proposer == "critic" or callable(getattr(proposer, "chat", None)):
        if proposer == "critic" and (critic is None or images is None):
            raise ValueError("the critic proposer needs the critic and the images it judged")
        proposer = LanguageModelProposer(proposer)
    elif not callable(proposer):
        raise ValueError(f"proposer must be 'rules', 'critic', a chat model or a proposer callable, got {proposer!r}")
    result = GenerationResult(prompt=positive, negative_prompt=negative, seeds=list(range(len(reports))),
                              images=list(images) if images is not None else [None] * len(reports),
                              reports=list(reports), objective=Objective.coerce(objective))
    return propose_guarded(proposer, result, critic=critic, objective=result.objective,
                           original_prompt=original_prompt or positive, max_words=max_words)


__all__ = [
    "INSTRUCTION", "INSTRUCTION_FIELDS", "SYSTEM_PROMPT", "ChatModel", "CriticChat", "LanguageModelProposer",
    "Rewrite", "RewriteParseError", "TransformersChatModel", "keeps_subject", "load_chat_model", "parse_rewrite",
    "propose_guarded", "revise_once", "subject_words",
]
