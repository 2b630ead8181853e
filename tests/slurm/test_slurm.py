"""The workflow on a real one-node SLURM cluster (scripts/slurm-local.sh): the tiny study through
workflow/profiles/slurm, a training job stopped by a signal and resumed by Snakemake's retry, and a
two-process (gloo) training job through sbatch/srun + torchrun. One cluster serves the whole module."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import run_cli
from tests.faults.test_train_kill import _weights, assert_resumed_run_equals
from tests.workflow.test_workflow import CELL, REPO, TINY, job_counts, snakemake

STUDY = (TINY, Path(__file__).with_name("slurm_study.yaml"))   # the tiny study without its extra seeds and choice

# one cluster per machine (it links /etc/slurm/slurm.conf): every test of this module on one xdist worker
pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.xdist_group("slurm")]

PROFILE = REPO / "workflow" / "profiles" / "slurm" / "config.yaml"
# the test overlay: the profile with its placeholders filled for the local cluster (no account)
FILLED = {"<cpu_partition>": "debug", "<gpu_partition>": "long"}
PARTITION = {"train": "long", "infer": "long"}     # the profile's set-resources; other rules: debug
SNAKEMAKE_FLAGS = ("--slurm-no-account", "--slurm-status-command", "squeue", "--slurm-keep-successful-logs",
                   "--slurm-init-seconds-before-status-checks", "2", "--latency-wait", "5")


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "the local SLURM cluster needs root (slurmd starts jobs as their user)"
    if not shutil.which("slurmctld") and not shutil.which("apt-get"):
        return "SLURM is not installed and apt-get is unavailable to install it"
    return None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    """A started one-node cluster (its SLURM_CONF set in this process); stopped afterwards, also on failure."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("slurm")
    script = REPO / "scripts" / "slurm-local.sh"
    started = subprocess.run(["bash", str(script), "start", str(folder)], capture_output=True, text=True,
                             timeout=600)
    try:
        if started.returncode == 3:
            pytest.skip(f"SLURM cannot be installed here: {started.stderr.strip()}")
        assert started.returncode == 0, started.stderr
        before = os.environ.get("SLURM_CONF")
        os.environ["SLURM_CONF"] = str(folder / "slurm.conf")
        try:
            yield folder
        finally:
            if before is None:
                os.environ.pop("SLURM_CONF", None)
            else:
                os.environ["SLURM_CONF"] = before
    finally:
        subprocess.run(["bash", str(script), "stop", str(folder)], capture_output=True, timeout=120)


def overlay_profile(folder: Path) -> Path:
    """workflow/profiles/slurm with the placeholders filled for the local cluster (the account line dropped)."""
    text = PROFILE.read_text()
    text = "\n".join(line for line in text.splitlines() if "slurm_account" not in line) + "\n"
    for placeholder, value in FILLED.items():
        text = text.replace(placeholder, value)
    assert "<" not in re.sub(r"#.*", "", text)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(text)
    return folder


def slurm_jobs(workdir: Path) -> list[dict[str, str]]:
    """`scontrol show job` records of the jobs run in `workdir` (finished jobs stay an hour: MinJobAge)."""
    out = subprocess.run(["scontrol", "show", "job", "-o"], capture_output=True, text=True, check=True).stdout
    jobs = []
    for line in out.splitlines():
        fields = dict(re.findall(r"(\S+?)=(\S*)", line))
        if fields.get("WorkDir") == str(workdir):
            jobs.append(fields)
    return jobs


def rule_of(job: dict[str, str]) -> str:
    """The rule name the executor plugin put into the job's comment (rule_<name>_wildcards_...)."""
    match = re.match(r"rule_(\w+?)_wildcards", job["Comment"]) or re.match(r"rule_(\w+)", job["Comment"])
    assert match, job["Comment"]
    return match.group(1)


def run_on_cluster(workdir: Path, *args: str, configfiles: tuple[Path, ...] = STUDY
                   ) -> subprocess.CompletedProcess:
    profile = overlay_profile(workdir / "profile")
    return snakemake(workdir, "--workflow-profile", str(profile), *SNAKEMAKE_FLAGS, *args, configfiles=configfiles,
                     timeout=900)


@pytest.fixture(scope="module")
def study(cluster: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny study run to completion through the SLURM profile; returns its folder."""
    workdir = tmp_path_factory.mktemp("study")
    result = run_on_cluster(workdir)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    return workdir


def test_profile_with_placeholders_stops_before_any_job(tmp_path: Path) -> None:
    result = snakemake(tmp_path, "--workflow-profile", str(PROFILE.parent), "-n")
    assert result.returncode != 0
    message = result.stdout + result.stderr
    for key in ("slurm_account=<your_account>", "slurm_partition=<cpu_partition>",
                "set-resources train: slurm_partition=<gpu_partition>"):
        assert key in message, message[-3000:]
    assert "sbatch" not in message


def test_tiny_study_every_job_is_a_slurm_job_sized_as_asked(study: Path) -> None:
    config = yaml.safe_load(TINY.read_text())
    dry = snakemake(study, "-n", "--forceall", "--workflow-profile", str(study / "profile"), "--slurm-no-account",
                    configfiles=STUDY)
    counts = job_counts(dry.stdout + dry.stderr)
    localrules = {"all", "grid", "ablation_pairing", "ablation_label_source", "train_config", "study_config"}
    expected = {rule: n for rule, n in counts.items() if rule not in localrules}
    jobs = slurm_jobs(study)
    ran: dict[str, int] = {}
    for job in jobs:
        rule = rule_of(job)
        ran[rule] = ran.get(rule, 0) + 1
        sizes = {**config["resources"]["default"], **config["resources"].get(rule, {})}
        assert job["JobState"] == "COMPLETED" and job["BatchFlag"] == "1", job
        assert job["Partition"] == PARTITION.get(rule, "debug"), job
        assert job["MinMemoryNode"] == f"{sizes['mem_mb']}M", job
        assert job["TimeLimit"] == f"00:{sizes['runtime']:02d}:00", job
        assert job["CPUs/Task"] == str(sizes["threads"]), job
        if rule == "train":
            assert job["OverSubscribe"] == "NO", job  # the profile's --exclusive
    assert ran == expected
    assert (study / "results" / "tiny" / "report" / "README.md").is_file()


def _train_job_id(workdir: Path, timeout: float = 300) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for job in slurm_jobs(workdir):
            if rule_of(job) == "train" and job["JobState"] == "RUNNING":
                return job["JobId"]
        time.sleep(0.5)
    raise AssertionError("no running train job")


def _direct_train_args(cell: Path, study: Path, output: Path) -> list[str]:
    pairs = study / "results/tiny/pairs/phy_deform" / cell.parent.name
    return ["train", "--config", str(cell / "train_config.yaml"), "--model_name_or_path",
            str(study / "results/tiny/backbone"), "--train_data", str(pairs / "train.json"),
            "--eval_data", str(pairs / "val.json"), "--output_dir", str(output)]


def test_signalled_training_job_is_retried_and_resumes_to_the_same_weights(study: Path, tmp_path: Path) -> None:
    """scancel --signal=TERM (as SLURM's --signal warning): the trainer checkpoints and exits 75, Snakemake
    resubmits the job, the new job resumes from the checkpoint, and the weights equal an uninterrupted run's."""
    overlay = tmp_path / "more_steps.yaml"
    overlay.write_text(yaml.safe_dump({"train": {"max_steps": 6, "save_steps": 0}}))
    cell = study / CELL.format(label_source="binary", pairing="cross_prompt", head="last_token", loss="bt")
    target = str(cell.relative_to(study) / "reward_model.done")
    log = study / "results/tiny/logs/train/phy_deform/binary__cross_prompt/last_token__bt.log"
    before = {job["JobId"] for job in slurm_jobs(study)}
    with (tmp_path / "snakemake.log").open("w") as out:
        profile = overlay_profile(study / "profile")
        env = dict(os.environ, OMP_NUM_THREADS="1", PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
        proc = subprocess.Popen([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "workflow/Snakefile"),
                                 "--directory", str(study), "--configfile", *map(str, STUDY), str(overlay),
                                 "--workflow-profile", str(profile), *SNAKEMAKE_FLAGS, target],
                                stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            metrics = cell / "model.partial" / "metrics.jsonl"
            deadline = time.monotonic() + 400
            while not (metrics.is_file() and '"kind": "train"' in metrics.read_text()):
                assert proc.poll() is None, (tmp_path / "snakemake.log").read_text()[-4000:]
                assert time.monotonic() < deadline, "the train job made no step"
                time.sleep(0.2)
            job_id = _train_job_id(study)
            subprocess.run(["scancel", "--signal=TERM", job_id], check=True)
            assert proc.wait(timeout=600) == 0, (tmp_path / "snakemake.log").read_text()[-4000:]
        finally:
            if proc.poll() is None:
                proc.kill()
    train_jobs = [job for job in slurm_jobs(study) if job["JobId"] not in before and rule_of(job) == "train"]
    assert [job["JobState"] for job in train_jobs] == ["FAILED", "COMPLETED"], train_jobs
    text = log.read_text()
    stopped = int(re.search(r"stopped by SIGTERM after step (\d+)", text).group(1))
    assert "train.sh: resuming in" in text and f"resumed from {cell.relative_to(study)}/model.partial/checkpoints/step-{stopped}" in text
    summary = json.loads((cell / "model" / "train_summary.json").read_text())
    assert summary["resumed_from_step"] == stopped and summary["global_step"] == 6

    torch.set_num_threads(1)
    full = tmp_path / "full"
    assert run_cli(*_direct_train_args(cell, study, full)) == 0
    assert_resumed_run_equals(cell / "model", full, stopped, f"stopped after step {stopped}", steps=6,
                              others=frozenset({".snakemake_timestamp"}))  # Snakemake's mark in directory outputs


def test_two_process_training_job_through_srun_equals_torchrun(study: Path, tmp_path: Path) -> None:
    """resources.train procs_per_node: 2 on CPU: one sbatch job, srun starts torchrun (c10d rendezvous from
    SLURM's variables) with two gloo processes; the weights equal torchrun --standalone's on the same config."""
    overlay = tmp_path / "two_procs.yaml"
    overlay.write_text(yaml.safe_dump({"resources": {"train": {"threads": 2, "mem_mb": 3000, "runtime": 10,
                                                                "gpu": 0, "procs_per_node": 2}}}))
    cell = study / CELL.format(label_source="binary", pairing="in_prompt", head="last_token", loss="bt")
    target = str(cell.relative_to(study) / "reward_model.done")
    before = {job["JobId"] for job in slurm_jobs(study)}
    result = run_on_cluster(study, target, "--forcerun", target, configfiles=(*STUDY, overlay))
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    [job] = [job for job in slurm_jobs(study) if job["JobId"] not in before]
    assert rule_of(job) == "train" and job["CPUs/Task"] == "2" and job["MinMemoryNode"] == "3000M", job
    log = (study / "results/tiny/logs/train/phy_deform/binary__in_prompt/last_token__bt.log").read_text()
    assert re.search(r"srun --overlap .*--nodes=1 --ntasks=1 --ntasks-per-node=1 .*torch\.distributed\.run "
                     r"--nnodes=1 --nproc_per_node=2 --rdzv_backend=c10d --rdzv_endpoint=\S+:\d+", log), log[-3000:]
    summary = json.loads((cell / "model" / "train_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["backend"] == "ddp", summary

    direct = tmp_path / "direct"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                    "-m", "solireward.cli", *_direct_train_args(cell, study, direct)], check=True, env=env,
                   capture_output=True, timeout=600)
    a, b = _weights(direct), _weights(cell / "model")
    assert a.keys() == b.keys()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
