"""The torch devices of ``--devices`` (one model replica each)."""

from __future__ import annotations

from typing import Any, Sequence


def pick_devices(names: Sequence[str]) -> list[Any]:
    """torch devices of ``--devices``: auto (every GPU, else cpu), cpu, or GPU indices / cuda:N."""
    import torch

    from solireward.errors import ConfigError

    names = list(names)
    if names == ["auto"]:
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return [torch.device(f"cuda:{i}") for i in range(count)] or [torch.device("cpu")]
    if "cpu" in names:
        if len(names) > 1:
            raise ConfigError("cpu cannot be combined with other devices", field="devices")
        return [torch.device("cpu")]
    devices = []
    for name in names:
        index = name.removeprefix("cuda:")
        if not index.isdigit():
            raise ConfigError(f"expected auto, cpu or GPU indices, got {name!r}", field="devices")
        if not torch.cuda.is_available() or int(index) >= torch.cuda.device_count():
            raise ConfigError(f"GPU {index} is not available on this machine", field="devices")
        devices.append(torch.device(f"cuda:{index}"))
    if len(set(devices)) != len(devices):
        raise ConfigError("a device is listed twice", field="devices")
    return devices
