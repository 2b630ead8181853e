"""The training loop of `solireward train`: one process, torchrun (DDP) or DeepSpeed (ZeRO 0-3).

Optimisation: AdamW with the parameter groups and learning-rate schedule of
:mod:`solireward.training.optimization`. The global gradient norm is clipped to ``--max_grad_norm``;
``--gradient_accumulation_steps`` micro-steps make one optimizer step.

Loss per micro-batch: ``losses.reward_loss`` over the micro-batch's pairs (in-batch: every Pass x
Fail and Pass x Pass pair of its videos, see ``losses.in_batch_pairs``; pairs_file: the file's pairs);
the optimizer-step loss is the mean over micro-batches (and ranks, as DDP averages gradients).
Pairs are formed inside each rank's micro-batch, not across ranks.

Metrics (``output_dir/metrics.jsonl``, one JSON object per line, written by rank 0):

- ``"kind": "train"`` every optimizer step: ``step``, ``epoch`` (fractional), ``loss`` (the
  optimised total, mean over micro-batches and ranks), ``loss_bt`` / ``loss_tie`` / ``loss_bce``
  (unweighted means of each part over the step's win-lose pairs / win-tie pairs / videos; BCE is
  reported even when its coefficient is 0), ``accuracy`` = in-batch pair accuracy: share of the
  step's win-lose pairs with ``score_win > score_lose`` (equal scores ½, as ``losses.count_correct_pairs``),
  ``n_pairs`` (pairs in the loss), ``n_ties``, ``n_videos`` (videos scored), ``learning_rate`` (of
  the step), ``grad_norm`` (global, before clipping), ``time`` (seconds since this process started)
  and ``step_time``.
- ``"kind": "eval"`` every ``--eval_steps`` and at the end: ``eval_accuracy`` = pair accuracy
  without ties over the eval file's win-lose pairs, each distinct video scored once
  (``evaluation.pair_accuracy``: d > 0 right, d = 0 ½), ``eval_roc_auc`` (``evaluation.roc_auc`` of the
  scores against Pass = quality > 0.5), ``eval_loss`` (the training loss over all eval pairs),
  ``eval_n_pairs``, ``eval_n_win_lose``, ``eval_n_videos``. With ``--keep_best`` also at step 0 (the starting
  weights), and ``"kind": "eval_kept"`` last when the best evaluation's weights replaced a worse last step's
  (:mod:`~solireward.training.best`): their eval row, with ``kept_step``.

A non-finite loss stops training with :class:`~solireward.errors.TrainingDivergedError` naming the
step, before the optimizer applies it.

Checkpoints (``output_dir/checkpoints/step-N/``, see :mod:`solireward.training.checkpoint`),
written into a temporary folder and renamed: ``model/`` (``RewardModel.save_pretrained``),
``optimizer.safetensors`` + ``optimizer.json`` and ``scheduler.json`` (or ``deepspeed/``, DeepSpeed's
own partitioned checkpoint), ``rng-rank<r>.json`` and ``trainer_state.json`` (step, epoch, world
size). The batch plan is a pure function of the seed, so the step number is the whole data-loader
position. ``--resume`` restores the newest complete checkpoint; on CPU with a fixed seed the resumed
run matches an uninterrupted one bit for bit. With LoRA, ``lora_trainable.safetensors`` holds the
adapters and head (``model/`` has them merged).

Preemption (:mod:`~solireward.training.preemption`): on SIGTERM or SIGUSR1 (what SLURM sends at a time limit,
on preemption or as the ``--signal`` warning) the trainer finishes the optimizer step in progress, writes a
checkpoint of it (atomically, as above), logs which signal stopped it and exits with status 75
(``EXIT_PREEMPTED``, ``EX_TEMPFAIL``: rerun with ``--resume`` to continue). Under torchrun every rank checks the
flag after each step (one all-reduce), so all ranks stop at the same step. A signal during the last step, the
final evaluation or the final save changes nothing.

The parts: :mod:`~solireward.training.backend` runs and updates the model (one process, DDP or
DeepSpeed), :mod:`~solireward.training.checkpoint` writes and restores checkpoints,
:mod:`~solireward.training.metrics_log` keeps metrics.jsonl, :mod:`~solireward.training.best` keeps the best
evaluation's weights (``--keep_best``), and :class:`Trainer` composes them.

At the end: the mean and population standard deviation of the final model's scores on the distinct
eval videos (training videos without ``--eval_data``) are stored in the model's config
(``score_mean``/``score_std``, used by ``normalise`` and ``score_norm``); the model is saved into
``output_dir`` (``save_pretrained``; files renamed into place beside the logs, its config last), with
``train_config.yaml`` (the resolved options, usable as ``--config``) and ``train_summary.json``
(steps, epochs, backend, the last train and eval rows, score statistics, wall time). A model whose scores there
vary by less than :data:`COLLAPSED_SCORE_STD` has collapsed to near-constant scores: the trainer warns and the
summary and the model's config say ``"collapsed": true`` (``serve`` refuses such a model).
"""

from __future__ import annotations

import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn
from tqdm import tqdm

from solireward import distributed as D
from solireward.errors import ConfigError, TrainingDivergedError
from solireward.data.video import FrameSampling
from solireward.evaluation import PASS_THRESHOLD, pair_accuracy, roc_auc
from solireward.io import write_json, write_text
from solireward.models.reward_model import CONFIG_NAME
from solireward.scoring import VideoEncoder, score_videos
from solireward.training.best import BestWeights
from solireward.training.backend import Backend, deepspeed_config, make_backend, use_bf16
from solireward.training.checkpoint import (latest_checkpoint, load_checkpoint, save_checkpoint,
                                            save_final_model, seed_all)
from solireward.training.augment import AugmentingEncoder
from solireward.training.config import ARCHITECTURE_OPTIONS, ModelOptions, TrainConfig, augmentation
from solireward.training.data import (BatchPlan, PairSet, VideoBatches, eval_shards, make_plan, prompt_groups,
                                      raise_if_error, read_pair_file)
from solireward.training.metrics_log import MetricsLog, StepStats, finite_or_none
from solireward.training.optimization import LRSchedule, lr_factor, parameter_groups
from solireward.training.preemption import EXIT_PREEMPTED, StopSignals

logger = logging.getLogger(__name__)

COLLAPSED_SCORE_STD = 0.05   # scores are preference logits: under this std a typical pair is within 2 % of a coin flip


# ----------------------------------------------------------------------------------------------
# The trainer


class Trainer:
    """Trains a reward model as configured; `run()` does everything and returns the summary."""

    env: D.DistEnv
    backend: Backend
    log: MetricsLog

    def __init__(self, config: TrainConfig, model_options: ModelOptions, loss_config: Any,
                 sampling: Any | None = None, given: frozenset[str] = frozenset(),
                 resolved: dict[str, Any] | None = None) -> None:
        self.cfg, self.mopts, self.loss_cfg = config, model_options, loss_config
        self.sampling_override, self.given = sampling, given
        self.resolved = resolved or {}
        self.out = Path(config.output_dir)

    # -- set-up -----------------------------------------------------------------------------

    def _load_data(self) -> None:
        cfg = self.cfg
        self.train_pairs = read_pair_file(cfg.train_data)
        # in-batch pairs and the per-video BCE need one label per video; a pairs file's BT/tie losses do not
        strict = cfg.batching == "in_batch" or self.loss_cfg.bce_loss_coeff > 0
        self.train_quality = self.train_pairs.video_qualities(strict=strict)
        self.train_groups = prompt_groups(self.train_pairs.prompts)
        self.eval_pairs = read_pair_file(cfg.eval_data) if cfg.eval_data else None

    def _build_model(self) -> nn.Module:
        from solireward.models import RewardModel, RewardModelConfig

        m = self.mopts
        path = Path(self.cfg.model_name_or_path)
        kwargs = {"torch_dtype": m.torch_dtype, "attn_implementation": m.attn_implementation}
        if (path / CONFIG_NAME).is_file():
            model = RewardModel.from_pretrained(path, **kwargs)
            ignored = [k for k in ARCHITECTURE_OPTIONS if k in self.given
                       and getattr(m, k) != getattr(model.config, k, getattr(m, k))]
            if ignored:
                logger.warning("continuing from the reward model in %s: its stored %s kept; the given "
                               "value(s) are ignored", path, ", ".join(ignored))
            if self.sampling_override is not None:
                model.config.sampling = self.sampling_override.to_dict()
        else:
            values = m.architecture()
            if self.sampling_override is not None:
                values["sampling"] = self.sampling_override.to_dict()
            model = RewardModel.from_backbone(path, RewardModelConfig(**values), **kwargs)
        self._prepare_for_training(model)
        return model

    def _prepare_for_training(self, model: nn.Module) -> None:
        """Freeze what is not trained; LoRA adapters and gradient checkpointing as asked."""
        m = self.mopts
        lm_head = getattr(model.backbone, "lm_head", None)
        embeddings = model.backbone.get_input_embeddings()
        if lm_head is not None and model.config.reduce_sequence != "good_token" \
                and lm_head.weight is not embeddings.weight:
            # only the good_token head reads the LM head; untied and unused, it would get no gradient
            # anyway, and DDP needs every trainable parameter to take part in the forward pass
            lm_head.requires_grad_(False)
        if m.freeze_vision_tower:
            model.freeze_vision_tower()
        if m.lora_r > 0:
            model.apply_lora(r=m.lora_r, alpha=m.lora_alpha, dropout=m.lora_dropout)
        if m.gradient_checkpointing:
            model.gradient_checkpointing_enable()

    def _make_plan(self) -> BatchPlan:
        """This run's batch plan; sets steps_per_epoch and total_steps."""
        cfg, env = self.cfg, self.env
        in_batch = cfg.batching == "in_batch"
        n_items = len(self.train_pairs.video_paths) if in_batch else self.train_pairs.num_pairs
        groups = self.train_groups if in_batch and cfg.pairing == "in_prompt" else None
        probe = make_plan(n_items, cfg.per_device_train_batch_size, env.world_size,
                          cfg.gradient_accumulation_steps, cfg.seed, 1, groups)
        self.steps_per_epoch = probe.micro_steps_per_epoch // cfg.gradient_accumulation_steps
        self.total_steps = cfg.max_steps if cfg.max_steps > 0 else \
            max(1, math.ceil(cfg.num_train_epochs * self.steps_per_epoch))
        epochs = math.ceil(self.total_steps / self.steps_per_epoch)
        return make_plan(n_items, cfg.per_device_train_batch_size, env.world_size,
                         cfg.gradient_accumulation_steps, cfg.seed, epochs, groups)

    def _set_up(self) -> BatchPlan:
        """Data, model, batch plan, optimizer, schedule and backend; returns the batch plan."""
        cfg, env = self.cfg, self.env
        done = latest_checkpoint(self.out)
        if done and not cfg.resume:
            raise ConfigError(f"{self.out} already holds checkpoints ({done.name}); pass --resume to continue "
                              "or choose another --output_dir", field="output_dir")
        self._load_data()
        self.bf16 = use_bf16(cfg.bf16, env.device)
        ds_config = deepspeed_config(cfg, env.world_size, self.bf16) if cfg.deepspeed is not None else None
        seed_all(cfg.seed)
        model = self._build_model().to(env.device)
        # record what was actually used: family, head, layers, prompts and frame sampling
        for key in ARCHITECTURE_OPTIONS:
            self.resolved[key] = getattr(model.config, key)
        self.resolved.update(model.config.sampling)
        plan = self._make_plan()
        warmup = math.ceil(cfg.warmup_ratio * self.total_steps)
        optimizer = torch.optim.AdamW(parameter_groups(model, cfg.weight_decay), lr=cfg.learning_rate,
                                      betas=(cfg.adam_beta1, cfg.adam_beta2), eps=cfg.adam_epsilon)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, LRSchedule(self.total_steps, warmup,
                                                                           cfg.lr_scheduler_type))
        self.backend = make_backend(model, optimizer, scheduler, env, bf16=self.bf16,
                                    max_grad_norm=cfg.max_grad_norm, accumulation=cfg.gradient_accumulation_steps,
                                    ds_config=ds_config)
        return plan

    def _resume(self) -> int:
        """With --resume, restore the newest complete checkpoint; returns its step (0 without one)."""
        if not self.cfg.resume:
            return 0
        folder = latest_checkpoint(self.out)
        if folder is None:
            logger.info("--resume: no complete checkpoint in %s; starting from scratch", self.out)
            return 0
        start = load_checkpoint(folder, self.backend, self.mopts)
        logger.info("resumed from %s (step %d of %d)", folder, start, self.total_steps)
        return start

    def _train_batches(self, plan: BatchPlan, start: int) -> VideoBatches:
        """This rank's training micro-batches from optimizer step `start` on."""
        cfg = self.cfg
        accum = cfg.gradient_accumulation_steps
        in_batch = cfg.batching == "in_batch"
        mitigations = augmentation(cfg)
        encoder = self._encoder(cache=cfg.cache_frames)
        augment = AugmentingEncoder(encoder, mitigations, cfg.seed, cfg.cache_frames) if mitigations.active else None
        return VideoBatches(plan.for_rank(self.env.rank)[start * accum:self.total_steps * accum],
                            self.train_pairs.video_paths, self.train_pairs.prompts, self.train_quality,
                            self.train_groups, encoder,
                            mode="videos" if in_batch else "pairs", pairs=None if in_batch else self.train_pairs,
                            augment=augment, first_step=start * accum, twins=cfg.consistency_loss_coeff > 0)

    # -- training ---------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Train, evaluate, checkpoint and write the final model; returns the summary (with
        ``stopped_by_signal`` when SIGTERM/SIGUSR1 stopped it early: then only a checkpoint was written)."""
        self.t0 = time.time()
        self.env = D.setup(use_deepspeed=self.cfg.deepspeed is not None)
        try:
            with StopSignals() as self.signals:
                return self._run()
        finally:
            D.cleanup(self.env)

    def _run(self) -> dict[str, Any]:
        cfg, env = self.cfg, self.env
        plan = self._set_up()
        start = self._resume()
        self.log = MetricsLog(self.out, start, enabled=env.is_main)
        if env.is_main:
            self._write_config()
        self.best = self._keep_best(start)
        dataset = self._train_batches(plan, start)
        show = env.is_main and (cfg.progress or sys.stderr.isatty())
        bar = tqdm(total=self.total_steps, initial=start, desc="train", unit="step", disable=not show,
                   dynamic_ncols=True)
        self.last_eval_scores = None
        last_eval: dict[str, Any] | None = None
        step, stats, t_step = start, StepStats(), time.time()
        self.backend.module.train()
        try:
            for i, batch in enumerate(self._loader(dataset)):
                raise_if_error(batch)
                last = (i + 1) % cfg.gradient_accumulation_steps == 0
                self._micro_step(batch, last, stats, step)
                if not last:
                    continue
                step += 1
                row = self._optimizer_step(stats, step, t_step)
                self.log.log(row)
                self._report(row, bar, show)
                last_eval = self._evaluate_and_save(step) or last_eval
                if step < self.total_steps and self._stop_requested():
                    return self._stop(step, start)
                stats, t_step = StepStats(), time.time()
        finally:
            bar.close()
        return self._finish(step, start, last_eval)

    def _stop_requested(self) -> bool:
        """True when a stop signal reached this process or any other rank."""
        flag = torch.tensor([0.0 if self.signals.received is None else 1.0])
        return D.all_reduce_sum(self.env, flag).item() > 0

    def _stop(self, step: int, start: int) -> dict[str, Any]:
        """Checkpoint optimizer step `step` (unless --save_steps just did) and return the stop summary."""
        cfg = self.cfg
        if not (cfg.save_steps and step % cfg.save_steps == 0):
            self._save_checkpoint(step)
        received = self.signals.received or "a stop signal on another rank"
        logger.warning("stopped by %s after step %d of %d: checkpoint %s written; rerun with --resume to "
                       "continue (exit status %d)", received, step, self.total_steps,
                       latest_checkpoint(self.out), EXIT_PREEMPTED)
        if self.env.is_main:
            self.log.close()
        D.barrier(self.env)
        return {"stopped_by_signal": received, "global_step": step, "total_steps": self.total_steps,
                "resumed_from_step": start or None, "train_time_s": round(time.time() - self.t0, 3)}

    def _micro_step(self, batch: dict[str, Any], last: bool, stats: StepStats, step: int) -> None:
        """Forward and backward of one micro-batch of optimizer step `step` + 1; its sums go into `stats`."""
        from solireward.losses import consistency_loss, in_batch_pairs, reward_loss

        qualities, groups = batch["qualities"], batch["groups"]
        if "win_idx" in batch:
            win, lose, tie = batch["win_idx"], batch["lose_idx"], batch["is_tie"]
        else:
            win, lose, tie = in_batch_pairs(qualities, groups if self.cfg.pairing == "in_prompt" else None)
        with self.backend.accumulating(last):
            scores = self.backend.forward(batch["inputs"])
            device = scores.device
            loss, parts = reward_loss(scores, win.to(device), lose.to(device), tie.to(device),
                                      qualities.to(device), self.loss_cfg)
            if "twins" in batch:
                consistency = consistency_loss(scores, self.backend.forward(batch["twins"]))
                loss = loss + self.consistency_weight(step) * consistency
                parts["consistency"] = consistency.detach()
            self.backend.backward(loss)
        stats.add(loss, parts, len(scores))

    def consistency_weight(self, step: int) -> float:
        """The consistency loss weight at optimizer step `step` (0-based): the learning rate's linear warm-up
        (:func:`lr_factor`) over ``ceil(consistency_warmup_ratio * total_steps)`` steps, then constant."""
        warmup = math.ceil(self.cfg.consistency_warmup_ratio * self.total_steps)
        return self.cfg.consistency_loss_coeff * lr_factor(step, self.total_steps, warmup, "constant")

    def _optimizer_step(self, stats: StepStats, step: int, t_step: float) -> dict[str, Any]:
        """Reduce the micro-steps' sums over ranks, stop on a non-finite loss, else take optimizer step
        `step`; returns its train row."""
        total = stats.reduced(self.env)
        loss, lr = total.mean_loss, self.backend.learning_rate()
        if not math.isfinite(loss):
            raise TrainingDivergedError(f"the training loss became {loss} at step {step} (learning rate "
                                        f"{lr:.3g}); lower --learning_rate or check the data")
        grad_norm = self.backend.step()
        now = time.time()
        return total.train_row(step, step / self.steps_per_epoch, lr, grad_norm, now - self.t0, now - t_step)

    def _report(self, row: dict[str, Any], bar: tqdm, show: bool) -> None:
        """The progress bar, or a log line every --logging_steps when there is no bar."""
        step, loss, accuracy = row["step"], row["loss"], row["accuracy"]
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", acc="-" if accuracy is None else f"{accuracy:.3f}", refresh=False)
        if self.cfg.logging_steps and step % self.cfg.logging_steps == 0 and self.env.is_main and not show:
            logger.info("step %d/%d loss %.4f acc %s lr %.3g", step, self.total_steps, loss, accuracy,
                        row["learning_rate"])

    def _evaluate_and_save(self, step: int) -> dict[str, Any] | None:
        """Evaluate and checkpoint when --eval_steps / --save_steps fall on `step` (the last step is
        `_finish`'s); returns the eval row, if any."""
        cfg = self.cfg
        row = None
        if self.eval_pairs is not None and cfg.eval_steps and step % cfg.eval_steps == 0 \
                and step < self.total_steps:
            row = self.evaluate(step)
            self.log.log(row)
            if self.best is not None:
                self.best.offer(row)
        if cfg.save_steps and step % cfg.save_steps == 0 and step < self.total_steps:
            self._save_checkpoint(step)
        return row

    def _keep_best(self, start: int) -> BestWeights | None:
        """With --keep_best, the keeper of the best weights; a fresh run first evaluates its starting weights."""
        if not self.cfg.keep_best:
            return None
        if self.backend.zero_stage == 3:
            raise ConfigError("cannot restore weights partitioned by DeepSpeed ZeRO-3; use stage 2 or less",
                              field="keep_best")
        best = BestWeights(self.out, self.backend, self.mopts, resumed=start > 0)
        if start == 0:
            row = self.evaluate(0)
            self.log.log(row)
            best.offer(row)
        return best

    def _restore_best(self, step: int, last_eval: dict[str, Any]) -> dict[str, Any]:
        """With --keep_best, the best evaluation's weights in place of a worse last step's; returns the eval row of
        the weights kept."""
        if self.best is None:
            return last_eval
        self.best.offer(last_eval)
        record = self.best.restore(step)
        if record is None:
            return last_eval
        logger.info("--keep_best: keeping step %d's weights (eval pair accuracy %.4f; step %d: %.4f)",
                    record["step"], record["eval_accuracy"], step, last_eval["eval_accuracy"])
        row = {**self.evaluate(step), "kind": "eval_kept", "kept_step": record["step"]}
        self.log.log(row)
        return row

    def _save_checkpoint(self, step: int) -> None:
        save_checkpoint(self.out, step, self.backend, epoch=step / self.steps_per_epoch,
                        total_steps=self.total_steps, lora=self.mopts.lora_r > 0, keep=self.cfg.save_total_limit)

    def _finish(self, step: int, start: int, last_eval: dict[str, Any] | None) -> dict[str, Any]:
        """Final evaluation and score statistics, last checkpoint, final model and summary."""
        cfg, env, backend = self.cfg, self.env, self.backend
        model = backend.model
        if self.eval_pairs is not None:
            last_eval = self.evaluate(step)
            self.log.log(last_eval)
            last_eval = self._restore_best(step, last_eval)
            scores = self.last_eval_scores
            stats_source = f"{len(scores)} eval videos"
        else:
            scores = self.score_videos(self.train_pairs)
            stats_source = f"{len(scores)} training videos (no --eval_data)"
            logger.warning("no --eval_data: score mean/std for score_norm come from the training videos")
        mean, std = float(np.mean(scores)), float(np.std(scores))
        model.config.score_mean, model.config.score_std = mean, std if std > 0 else 1.0
        model.config.collapsed = std < COLLAPSED_SCORE_STD
        if model.config.collapsed:
            logger.warning("the model's scores collapsed: standard deviation %.3g over %s (under %g: it ranks "
                           "nothing); serve refuses it", std, stats_source, COLLAPSED_SCORE_STD)
        if step > start:
            self._save_checkpoint(step)
        save_final_model(self.out, backend)
        summary = {"global_step": step, "total_steps": self.total_steps, "resumed_from_step": start or None,
                   "epochs": step / self.steps_per_epoch, "steps_per_epoch": self.steps_per_epoch,
                   "train_videos": len(self.train_pairs.video_paths), "train_pairs": self.train_pairs.num_pairs,
                   "batching": cfg.batching, "pairing": cfg.pairing, "world_size": env.world_size,
                   "backend": backend.name, "zero_stage": backend.zero_stage, "device": str(env.device),
                   "bf16": self.bf16, "score_mean": mean, "score_std": model.config.score_std,
                   "score_stats_from": stats_source, "collapsed": model.config.collapsed,
                   "final_train": self.log.last_train_row,
                   "final_eval": last_eval, "train_time_s": round(time.time() - self.t0, 3)}
        if env.is_main:
            write_json(self.out / "train_summary.json", summary)
            self.log.close()
        D.barrier(env)
        return summary

    def _write_config(self) -> None:
        header = "# resolved options of this run; rerun with: solireward train --config train_config.yaml\n"
        write_text(self.out / "train_config.yaml", header + yaml.safe_dump(self.resolved, sort_keys=False))

    # -- reading videos and evaluation --------------------------------------------------------

    def _loader(self, dataset: torch.utils.data.Dataset) -> torch.utils.data.DataLoader:
        workers = self.cfg.dataloader_num_workers
        # own generator: creating a loader must not draw from the global RNG (resume equality)
        return torch.utils.data.DataLoader(dataset, batch_size=None, shuffle=False, num_workers=workers,
                                           generator=torch.Generator().manual_seed(self.cfg.seed),
                                           pin_memory=self.env.device.type == "cuda",
                                           prefetch_factor=2 if workers else None,
                                           persistent_workers=False)

    def _encoder(self, cache: bool = False) -> VideoEncoder:
        """The scoring path's per-video encoder, with the model's frame sampling."""
        model = self.backend.model
        return VideoEncoder(model.collator(), FrameSampling.from_dict(dict(model.config.sampling)),
                            backend=self.cfg.video_backend, timeout_s=self.cfg.decode_timeout, cache=cache)

    def score_videos(self, pairs: PairSet) -> np.ndarray:
        """Scores of every distinct video of `pairs`, computed on all ranks (the shared scoring path) and gathered."""
        env, cfg, backend = self.env, self.cfg, self.backend
        n = len(pairs.video_paths)
        # equal-length batches on every rank (the last ones padded with video 0, whose scores are dropped)
        ids = np.concatenate(eval_shards(n, cfg.per_device_eval_batch_size, env.world_size)[env.rank])
        videos = np.maximum(ids, 0)
        scores, _ = score_videos(backend.model, [pairs.video_paths[v] for v in videos],
                                 [pairs.prompts[v] for v in videos], batch_size=cfg.per_device_eval_batch_size,
                                 num_workers=cfg.dataloader_num_workers, backend=cfg.video_backend,
                                 timeout_s=cfg.decode_timeout, on_error="raise", module=backend.module,
                                 device=env.device, input_dtype=backend.input_dtype, autocast=backend.autocast)
        found = {int(vid): scores[pos] for pos, vid in enumerate(ids.tolist()) if vid >= 0}
        merged: dict[int, float] = {}
        for part in D.all_gather_objects(env, found):
            merged.update(part)
        return np.asarray([merged[i] for i in range(n)], dtype=np.float64)

    def evaluate(self, step: int) -> dict[str, Any]:
        """Pair accuracy (no ties), ROC-AUC and loss on the eval pairs; the scores are kept for score_norm."""
        assert self.eval_pairs is not None
        from solireward.losses import reward_loss

        pairs = self.eval_pairs
        scores = self.score_videos(pairs)
        self.last_eval_scores = scores
        non_tie = ~pairs.is_tie
        d = scores[pairs.win[non_tie]] - scores[pairs.lose[non_tie]]
        quality = pairs.video_qualities(strict=False)
        with torch.no_grad():
            loss, _ = reward_loss(torch.as_tensor(scores, dtype=torch.float32), torch.as_tensor(pairs.win),
                                  torch.as_tensor(pairs.lose), torch.as_tensor(pairs.is_tie),
                                  torch.as_tensor(quality, dtype=torch.float32), self.loss_cfg)
        return {"kind": "eval", "step": step, "epoch": step / self.steps_per_epoch,
                "eval_accuracy": pair_accuracy(d), "eval_roc_auc": roc_auc(scores, quality > PASS_THRESHOLD),
                "eval_loss": finite_or_none(loss), "eval_n_pairs": int(pairs.num_pairs), "eval_n_win_lose": int(d.size),
                "eval_n_videos": len(scores), "time": round(time.time() - self.t0, 3)}
