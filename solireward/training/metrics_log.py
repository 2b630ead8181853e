"""``output_dir/metrics.jsonl``: the per-step sums behind a train row, the row, and the log file.

One JSON object per line, written by rank 0 (the row fields are described in
:mod:`solireward.training.trainer`). A resumed run keeps the rows of the steps up to the checkpoint
it resumes from and replays the rest, so the file ends up as an uninterrupted run's.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import IO, Any

import torch

from solireward import distributed as D
from solireward.io import atomic_write

METRICS_FILE = "metrics.jsonl"


def finite_or_none(value: Any) -> float | None:
    """`value` as a float, or None when it is NaN or infinite (JSON has neither)."""
    value = float(value)
    return value if math.isfinite(value) else None


@dataclasses.dataclass
class StepStats:
    """Sums over the micro-steps of one optimizer step (and, after `reduced`, over ranks)."""

    loss: float = 0.0
    parts: dict[str, float] = dataclasses.field(default_factory=dict)
    correct: float = 0.0      # win-lose pairs ordered right (equal scores 1/2, as losses.count_correct_pairs)
    non_ties: float = 0.0     # win-lose pairs
    pairs: float = 0.0        # pairs that contributed to the loss
    ties: float = 0.0
    videos: float = 0.0
    micro: float = 0.0

    def add(self, loss: torch.Tensor, parts: dict[str, Any], n_videos: int) -> None:
        """Count one micro-batch: its loss and the parts `losses.reward_loss` returned."""
        self.loss += float(loss.detach())
        for name, count in (("bt", parts["n_win_lose"]), ("tie", parts["n_tie"]), ("bce", n_videos),
                            ("consistency", n_videos)):
            if name in parts:
                self.parts[name] = self.parts.get(name, 0.0) + float(parts[name]) * float(count)
        self.correct += float(parts["correct"])
        self.non_ties += float(parts["n_win_lose"])
        self.pairs += float(parts["n_pairs"])
        self.ties += float(parts["n_tie"])
        self.videos += float(n_videos)
        self.micro += 1.0

    def reduced(self, env: D.DistEnv) -> StepStats:
        """The sums over every rank."""
        names = sorted(self.parts)
        vec = torch.tensor([self.loss, self.correct, self.non_ties, self.pairs, self.ties, self.videos,
                            self.micro] + [self.parts[n] for n in names], dtype=torch.float64)
        vec = D.all_reduce_sum(env, vec).tolist()
        return StepStats(vec[0], dict(zip(names, vec[7:])), *vec[1:7])

    @property
    def mean_loss(self) -> float:
        """The optimised loss: mean over micro-batches (and ranks)."""
        return self.loss / max(self.micro, 1.0)

    def train_row(self, step: int, epoch: float, learning_rate: float, grad_norm: float, elapsed: float,
                  step_time: float) -> dict[str, Any]:
        """The ``"kind": "train"`` row of an optimizer step."""
        row: dict[str, Any] = {"kind": "train", "step": step, "epoch": round(epoch, 6), "loss": self.mean_loss}
        for name, count in (("bt", self.non_ties), ("tie", self.ties), ("bce", self.videos),
                            ("consistency", self.videos)):
            if name in self.parts:
                row[f"loss_{name}"] = self.parts[name] / count if count else None
        row.update({"accuracy": self.correct / self.non_ties if self.non_ties else None,
                    "n_pairs": int(self.pairs), "n_ties": int(self.ties), "n_videos": int(self.videos),
                    "learning_rate": learning_rate, "grad_norm": finite_or_none(grad_norm),
                    "time": round(elapsed, 3), "step_time": round(step_time, 4)})
        return row


class MetricsLog:
    """metrics.jsonl of a run, open for appending on rank 0 (other ranks only track the last train row)."""

    def __init__(self, output_dir: Path, start: int, enabled: bool) -> None:
        """Keep the rows of steps <= `start` (a resumed run replays the rest), then append."""
        self.path = output_dir / METRICS_FILE
        self.last_train_row: dict[str, Any] | None = None
        self._handle: IO[str] | None = None
        if not enabled:
            return
        kept: list[str] = []
        if start and self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue    # a line cut short by the interruption
                if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= start:
                    kept.append(line)
                    if row.get("kind") == "train":
                        self.last_train_row = row
        with atomic_write(self.path, encoding="utf-8") as handle:
            handle.write("".join(line + "\n" for line in kept))
        self._handle = self.path.open("a", encoding="utf-8")

    def log(self, row: dict[str, Any]) -> None:
        """Append one row (flushed at once, so an interruption loses at most the line being written)."""
        if row.get("kind") == "train":
            self.last_train_row = row
        if self._handle is not None:
            self._handle.write(json.dumps(row) + "\n")
            self._handle.flush()

    def close(self) -> None:
        """Close the file (rows logged afterwards are only tracked)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
