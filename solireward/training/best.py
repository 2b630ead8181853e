"""``--keep_best``: early stopping chosen on the eval pairs.

Every evaluation (the starting weights' at step 0 included) whose pair accuracy beats the best so far
writes its weights to ``output_dir/checkpoints/best/`` (``model/``, with LoRA ``lora_trainable.safetensors``,
and ``best.json``: step and accuracy; written into a temporary folder and renamed, so it survives
preemption and ``--resume``). At the end of training the trainer restores those weights when a later
step was worse. Ties keep the earlier step: when continuing a trained model that nothing improves,
the result is that model.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from solireward import distributed as D
from solireward.io import replace_dir, write_json
from solireward.training.checkpoint import CHECKPOINT_DIR, load_model_weights, save_weights

if TYPE_CHECKING:
    from solireward.training.backend import Backend
    from solireward.training.config import ModelOptions

BEST_DIR = "best"
RECORD_FILE = "best.json"


class BestWeights:
    """The weights of the best evaluation so far, kept on disk."""

    def __init__(self, output_dir: Path, backend: Backend, model_options: ModelOptions, *, resumed: bool) -> None:
        self.backend, self.mopts = backend, model_options
        self.folder = output_dir / CHECKPOINT_DIR / BEST_DIR
        record = self.folder / RECORD_FILE
        self.record: dict[str, Any] | None = None
        if resumed and record.is_file():
            self.record = json.loads(record.read_text(encoding="utf-8"))
        elif backend.env.is_main and self.folder.exists():
            shutil.rmtree(self.folder)   # a fresh run: an earlier run's best is not this one's
        D.barrier(backend.env)

    def offer(self, row: dict[str, Any]) -> None:
        """Keep the weights of eval row `row` when its pair accuracy beats the best so far (every rank calls)."""
        accuracy = row.get("eval_accuracy")
        if accuracy is None or not math.isfinite(accuracy):
            return
        if self.record is not None and accuracy <= self.record["eval_accuracy"]:
            return
        env = self.backend.env
        tmp = self.folder.with_name(f".tmp-{BEST_DIR}")
        if env.is_main:
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir(parents=True)
        D.barrier(env)
        save_weights(tmp, self.backend, self.mopts.lora_r > 0)
        self.record = {"step": int(row["step"]), "eval_accuracy": float(accuracy)}
        if env.is_main:
            write_json(tmp / RECORD_FILE, self.record)
            replace_dir(tmp, self.folder)
        D.barrier(env)

    def restore(self, step: int) -> dict[str, Any] | None:
        """Load the best weights into the training model unless they are step `step`'s; returns the best's record
        when it restored them."""
        if self.record is None or self.record["step"] == step:
            return None
        load_model_weights(self.folder / "model", self.backend.model, self.mopts)
        return self.record
