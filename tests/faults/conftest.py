"""The fault tests reuse the training tests' demo pair files and tiny Qwen2-VL backbone."""

from tests.training.conftest import demo_pairs, tiny_qwen

__all__ = ["demo_pairs", "tiny_qwen"]  # fixtures, re-exported for pytest
