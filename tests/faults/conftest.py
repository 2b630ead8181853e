"""The fault tests reuse the training tests' demo pair files and tiny Qwen2-VL backbone."""

from tests.training.conftest import demo_pairs, tiny_qwen  # noqa: F401 (fixtures)
