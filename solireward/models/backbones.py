"""Load a vision-language backbone and its processor from a folder, for every family alike."""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from solireward.errors import InputError
from solireward.models.families import Family, detect_family, get_family
from solireward.models.fast_ops import speed_up


TORCH_DTYPES = ("auto", "float32", "bfloat16", "float16")
ATTN_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2")
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")


def read_backbone_config(path: str | Path) -> dict[str, Any]:
    """The config.json of a model folder; a folder without a (safetensors) model is an InputError."""
    folder = Path(path)
    if not folder.is_dir():
        raise InputError("model folder does not exist (the model hub is not used: give a local folder)",
                         file=str(folder))
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise InputError("not a model folder: config.json is missing", file=str(folder))
    if not any((folder / name).is_file() for name in _WEIGHT_FILES):
        raise InputError(f"not a model folder: no safetensors weights ({' or '.join(_WEIGHT_FILES)})",
                         file=str(folder))
    try:
        return json.loads(config_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON ({exc.msg})", file=str(config_file)) from None


def resolve_family(path: str | Path, model_type: str | None = None) -> Family:
    """The family named by `model_type`, or detected from the folder's config.json; both must agree."""
    config = read_backbone_config(path)
    detected = detect_family(config, str(Path(path) / "config.json"))
    if model_type is None:
        return detected
    family = get_family(model_type)
    if family is not detected:
        raise InputError(f"--model_type {model_type} does not match the checkpoint, which is a {detected.name} model",
                         file=str(path), field="model_type")
    return family


def resolve_dtype(torch_dtype: str | torch.dtype | None) -> str | torch.dtype:
    """A `--torch_dtype` value as `from_pretrained` takes it ("auto" keeps the checkpoint's dtype)."""
    if torch_dtype is None or isinstance(torch_dtype, torch.dtype):
        return torch_dtype or "auto"
    if torch_dtype not in TORCH_DTYPES:
        raise InputError(f"expected one of {list(TORCH_DTYPES)}, got '{torch_dtype}'", field="torch_dtype")
    return torch_dtype if torch_dtype == "auto" else getattr(torch, torch_dtype)


def check_attn_implementation(attn_implementation: str | None) -> str:
    """Validate `--attn_implementation`; flash_attention_2 needs the flash_attn package and a GPU."""
    attn = attn_implementation or "sdpa"
    if attn not in ATTN_IMPLEMENTATIONS:
        raise InputError(f"expected one of {list(ATTN_IMPLEMENTATIONS)}, got '{attn}'", field="attn_implementation")
    if attn == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
        raise InputError("flash_attention_2 needs the flash-attn package (pip install flash-attn), which is not "
                         "installed; use --attn_implementation sdpa", field="attn_implementation")
    return attn


def load_backbone(path: str | Path, model_type: str | None = None, torch_dtype: str | torch.dtype | None = "auto",
                  attn_implementation: str | None = "sdpa") -> tuple[nn.Module, Any, Family]:
    """Load `(model, processor, family)` from a local folder with `from_pretrained` (no remote code); the model
    computes with :func:`~solireward.models.fast_ops.speed_up`'s faster equivalents."""
    from transformers import AutoProcessor

    family = resolve_family(path, model_type)
    model = family.model_cls().from_pretrained(str(path), dtype=resolve_dtype(torch_dtype),
                                               attn_implementation=check_attn_implementation(attn_implementation))
    processor = AutoProcessor.from_pretrained(str(path))
    return speed_up(model), processor, family


def get_module(root: nn.Module, dotted: str) -> nn.Module:
    """`root.a.b.c` for `dotted = "a.b.c"`."""
    return functools.reduce(getattr, dotted.split("."), root)


def decoder_layers(model: nn.Module, family: Family) -> nn.ModuleList:
    """The language model's decoder layers."""
    return get_module(model, family.language_model_path).layers


def text_hidden_size(model: nn.Module) -> int:
    """Width of the language model's hidden states."""
    return int(model.config.get_text_config().hidden_size)
