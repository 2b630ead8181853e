"""The text a reward model reads beside the video: a system prompt and one short question per task.

Questions are kept short on purpose: every token is paid for in every training step (docs/DESIGN.md §8).
A question may contain ``{prompt}``, replaced by the video's own generation prompt (text alignment).
"""

from __future__ import annotations

from typing import Any

from solireward.errors import InputError

PROMPT_FIELD = "{prompt}"

DEFAULT_SYSTEM_PROMPT = "You rate AI-generated videos."

DEFAULT_QUESTIONS: dict[str, str] = {
    "phy_deform": "Is the motion physically plausible and the subject free of deformity?",
    "text_alignment": 'Does the video match the prompt "{prompt}"?',
}


def default_question(task: str) -> str:
    """The built-in question of a reward task; other tasks must give `--question` themselves."""
    try:
        return DEFAULT_QUESTIONS[task]
    except KeyError:
        raise InputError(f"no built-in question for reward task '{task}' (built in: {sorted(DEFAULT_QUESTIONS)}); "
                         "give one with --question", field="reward_task") from None


def fill_question(question: str, prompt: str | None) -> str:
    """The question with `{prompt}` replaced by the video's prompt (required when the question uses it)."""
    if PROMPT_FIELD not in question:
        return question
    if prompt is None or not str(prompt).strip():
        raise InputError(f"the question uses {PROMPT_FIELD} but the video has no prompt", field="prompt")
    return question.replace(PROMPT_FIELD, str(prompt).strip())


def build_messages(system_prompt: str, question: str, prompt: str | None) -> list[dict[str, Any]]:
    """Chat messages: the system prompt, then one user turn holding the video and the question."""
    messages: list[dict[str, Any]] = []
    if system_prompt:
        messages.append({"role": "system", "content": [{"type": "text", "text": system_prompt}]})
    messages.append({"role": "user", "content": [{"type": "video"},
                                                 {"type": "text", "text": fill_question(question, prompt)}]})
    return messages


def render_prompt(processor: Any, system_prompt: str, question: str, prompt: str | None) -> str:
    """The chat-template text (video placeholder included, generation prompt appended) for one video."""
    return processor.apply_chat_template(build_messages(system_prompt, question, prompt), tokenize=False,
                                         add_generation_prompt=True)
