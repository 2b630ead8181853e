"""Shared fixtures: run the CLI in-process, and build the small demo data set and tiny models once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from solireward.cli import main as cli_main  # noqa: E402


def run_cli(*args: object) -> int:
    """Run `solireward <args>` in this process and return its exit status."""
    return cli_main([str(a) for a in args])


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated demo data set (12 prompts x 4 videos), built once per test session."""
    out = tmp_path_factory.mktemp("demo")
    assert run_cli("demo-data", "--output_dir", out, "--num_prompts", 12, "--videos_per_prompt", 4,
                   "--seed", 0) == 0
    return out


@pytest.fixture(scope="session")
def tiny_model_factory(tmp_path_factory: pytest.TempPathFactory):
    """Build (once) and return the folder of a tiny random backbone of a family."""
    cache: dict[str, Path] = {}

    def build(model_type: str = "Qwen2-VL") -> Path:
        if model_type not in cache:
            out = tmp_path_factory.mktemp(f"tiny-{model_type}")
            assert run_cli("tiny-model", "--model_type", model_type, "--output_dir", out, "--seed", 0) == 0
            cache[model_type] = out
        return cache[model_type]

    return build


def chromium() -> str:
    """Debian's headless Chromium, installed with apt-get when missing (root); the test is skipped where it
    cannot be installed."""
    import shutil
    import subprocess

    path = shutil.which("chromium")
    if path is None and shutil.which("apt-get") and os.geteuid() == 0:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run("apt-get update -qq && apt-get install -y -qq chromium", shell=True, env=env,
                       capture_output=True, timeout=900)
        path = shutil.which("chromium")
    if path is None:
        pytest.skip("chromium is not installed and cannot be installed here (needs root and apt-get)")
    return path


def rendered_text(page: Path) -> str:
    """The text a browser shows of an HTML page: headless Chromium's DOM after its scripts ran, tags removed."""
    import re
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                                 f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom",
                                 page.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "<html" in result.stdout, result.stderr[-2000:]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", result.stdout))
