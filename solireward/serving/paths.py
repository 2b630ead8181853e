"""Video paths in requests: resolved under ``--video_root``, and found in free text (OpenRLHF's query, verl's
decoded response). No message here names the server's root: clients see only what they sent."""

from __future__ import annotations

import re
from pathlib import Path

from solireward.serving.batcher import ItemError

# the default `--query_pattern`: runs of characters that are neither whitespace, quotes, nor the
# <|...|> / </s> punctuation of chat special tokens, which a decoded query keeps around its text
DEFAULT_QUERY_PATTERN = r"[^\s<>|\"'`]+"
_TRAILING = ".,;:!?)]}"  # sentence punctuation a path in prose may carry ("saved to a.mp4.")


def checked_path(video_path: str, root: Path | None) -> str:
    """`video_path` resolved under `root` (symlinks followed); anything that lands outside is an ItemError."""
    if root is None:
        raise ItemError("path", "this server accepts no video paths (start it with --video_root)")
    if "\x00" in video_path:
        raise ItemError("path", "video_path holds a NUL character")
    path = Path(video_path)
    try:
        resolved = (path if path.is_absolute() else root / path).resolve()
    except (OSError, RuntimeError):  # a symlink loop; the exception's text would name the absolute path
        raise ItemError("path", f"{video_path!r} cannot be resolved (a symlink loop)") from None
    if not resolved.is_relative_to(root):
        raise ItemError("path", f"{video_path!r} is outside --video_root (after resolving '..' and symlinks); refused")
    if not resolved.exists() and (path if path.is_absolute() else root / path).is_symlink():
        raise ItemError("path", f"{video_path!r} is a symlink to a file that does not exist (a dangling symlink)")
    return str(resolved)


def find_video(text: str, root: Path | None, pattern: str | re.Pattern[str] = DEFAULT_QUERY_PATTERN) -> str:
    """The last match of `pattern` in `text` that names a file under `root` (or, without a root, any file).

    Each match is tried as is and without trailing sentence punctuation; matches that leave the root,
    loop or name no file are skipped. None found is an ItemError (kind ``path``) quoting the text's end.
    """
    regex = re.compile(pattern) if isinstance(pattern, str) else pattern
    for match in reversed(regex.findall(text)):
        word = match if isinstance(match, str) else match[0]
        for candidate in dict.fromkeys((word, word.rstrip(_TRAILING))):
            if not candidate:
                continue
            try:
                path = checked_path(candidate, root) if root is not None else str(Path(candidate).resolve())
            except (ItemError, OSError, RuntimeError):
                continue
            if Path(path).is_file():
                return path
    tail = text[-80:]
    where = " under --video_root" if root is not None else ""
    raise ItemError("path", f"no word of the text names a video file{where} (pattern {regex.pattern!r}; the text "
                            f"ends {tail!r})")
