"""Chat templates around OpenRLHF's prompts: the reward model reads the user's words, not the template.

OpenRLHF sends in ``prompts`` the prompt as its policy saw it, after the tokenizer's chat template
(``<|im_start|>system ... <|im_start|>user\\nA red ball<|im_end|>\\n<|im_start|>assistant\\n``). A video
reward model is trained on the bare generation prompt; fed the template, its text tower reads a different
string (on the tests' tiny model the score moved by up to 0.41) and nothing says so. So the server scores
the last user turn of a recognised template; text in no template it knows is used as is.
"""

from __future__ import annotations

import re

# (name, pattern of one user turn: its text is group 1); the last user turn is the prompt
TEMPLATES = (
    ("ChatML", re.compile(r"<\|im_start\|>user[ \t]*\n(.*?)(?:<\|im_end\|>|<\|im_start\|>|$)", re.S)),
    ("Llama 3", re.compile(r"<\|start_header_id\|>user<\|end_header_id\|>(.*?)(?:<\|eot_id\|>|<\|start_header_id\|>|$)",
                           re.S)),
    ("Llama 2 / Mistral", re.compile(r"\[INST\](?:\s*<<SYS>>.*?<</SYS>>)?(.*?)\[/INST\]", re.S)),
)


def strip_chat_template(text: str) -> tuple[str, str | None]:
    """The last user turn of `text` and the template's name, or `text` unchanged and None when it is in none."""
    for name, pattern in TEMPLATES:
        turns = pattern.findall(text)
        if turns:
            return turns[-1].strip(), name
    return text, None
