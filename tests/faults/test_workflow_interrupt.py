"""A Snakemake run interrupted (Ctrl-C) in the middle of training, then run again: only the unfinished job
runs again, and nothing half-written is left behind or taken for a finished model."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.workflow.test_workflow import SNAKEFILE, TINY, job_counts, snakemake

pytestmark = pytest.mark.slow  # whole trainings / clusters: left out of the quick loop (-m "not slow")

CELL = Path("results/tiny/models/phy_deform/binary__cross_prompt/last_token__bt")
TARGET = str(CELL / "reward_model.done")
STEPS = 16


def _snapshot(root: Path, *skip: Path) -> dict[str, int]:
    """Modification times of every file under `root` except those under the `skip` folders, the logs and the frame
    cache (a memo that any job may add to, not an output)."""
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")
            if p.is_file() and not any(s in p.parents for s in skip)
            and not {"logs", "frame_cache"} & set(p.relative_to(root).parts)}


@pytest.mark.slow
def test_interrupted_training_reruns_only_the_unfinished_job(tmp_path: Path) -> None:
    overlay = tmp_path / "longer_training.yaml"  # long enough to be interrupted between two checkpoints
    overlay.write_text(yaml.safe_dump({"train": {"max_steps": STEPS, "save_steps": 2, "save_total_limit": 1}}))
    configs = (TINY, overlay)
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--directory", str(tmp_path),
               "--configfile", *map(str, configs), "--cores", "1", TARGET]
    log = tmp_path / "first_run.log"
    model = tmp_path / CELL / "model"
    partial = tmp_path / CELL / "model.partial"  # the train rule trains here and renames it when done
    with log.open("w") as out:
        # its own process group, so the interrupt reaches snakemake and its job as a terminal's Ctrl-C does;
        # SIGINT back to default, as in a terminal: a suite started in the background of a script
        # (`pytest &`) inherits it ignored, and snakemake would then never see the interrupt
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            deadline = time.monotonic() + 400
            while not (partial / "checkpoints" / "step-2" / "trainer_state.json").is_file():
                assert proc.poll() is None, f"snakemake ended before training started:\n{log.read_text()[-3000:]}"
                assert time.monotonic() < deadline, f"no training checkpoint after 400 s:\n{log.read_text()[-3000:]}"
                time.sleep(0.05)
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(120)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    first = log.read_text()
    assert proc.returncode != 0, first[-3000:]
    assert not (tmp_path / CELL / "reward_model.done").exists(), first[-3000:]
    assert not (model / "solireward_config.json").exists()  # no half-trained model that looks finished
    finished = _snapshot(tmp_path / "results", model, partial)
    assert any(name.endswith("train.json") for name in finished) and any(n.endswith("train_config.yaml") for n in finished)

    again = snakemake(tmp_path, "--cores", "1", TARGET, configfiles=configs)
    output = again.stdout + again.stderr
    assert again.returncode == 0, output[-5000:]
    assert job_counts(output) == {"train": 1}, output[-3000:]  # data, pairs, backbone and config not rebuilt
    assert not partial.exists()  # renamed into place once complete
    assert {k: v for k, v in _snapshot(tmp_path / "results", model, partial).items()
            if not k.endswith("reward_model.done")} == finished

    from solireward.models import RewardModel

    assert (tmp_path / CELL / "reward_model.done").is_file()
    summary = yaml.safe_load((model / "train_summary.json").read_text())
    assert summary["global_step"] == STEPS
    RewardModel.from_pretrained(model)  # a complete, loadable model
    hidden = [p.name for p in model.rglob(".*") if p.name != ".snakemake_timestamp"]  # snakemake's own marker
    assert hidden == [], "temporary files left in the model folder"
    assert "Nothing to be done" in (lambda r: r.stdout + r.stderr)(snakemake(tmp_path, "-n", TARGET,
                                                                              configfiles=configs))
