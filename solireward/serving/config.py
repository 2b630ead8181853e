"""Options of `solireward serve` (no web framework imported here, so `--help` needs no extra)."""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import re

from solireward.config import arg
from solireward.data.video import BACKENDS
from solireward.conservative import ENSEMBLES, EnsembleOptions
from solireward.errors import ConfigError
from solireward.models.backbones import ATTN_IMPLEMENTATIONS, TORCH_DTYPES
from solireward.serving.paths import DEFAULT_QUERY_PATTERN

API_KEY_ENV = "SOLIREWARD_API_KEY"
FPS_RANGE = (0.01, 1000.0)  # frame rates accepted for in-memory frames, frames/s (a slideshow to a slow-motion camera)


def fps_problem(value: object) -> str | None:
    """Why `value` is no frame rate (not a number, not finite, outside :data:`FPS_RANGE`), or None."""
    low, high = FPS_RANGE
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"expected a number of frames per second, got {value!r}"
    if not (math.isfinite(value) and low <= value <= high):
        return f"expected a finite frame rate from {low:g} to {high:g} frames/s, got {value!r}"
    return None


@dataclasses.dataclass
class ServeConfig:
    """Options of `solireward serve` (a batched reward server over HTTP)."""

    model: list[str] = arg("reward models to serve, NAME=DIR each (a folder written by `solireward train`); "
                           "the flag may be repeated")
    weights: list[str] = arg("weight of a model in the reward, NAME=W each (unnamed models weigh 1); "
                             "reward = sum of weight x score_norm", default_factory=list)
    ensemble: str | None = arg("a conservative reward over the models instead of the weighted sum, for several "
                               "models of one task (e.g. the replicates of a cell): mean_minus_std (mean - "
                               "lambda x std of their score_norm), mean or min; unset: the weighted sum", None,
                               choices=ENSEMBLES)
    ensemble_lambda: float = arg("lambda of --ensemble mean_minus_std", 1.0)
    host: str = arg("address to bind (anything but a loopback address exposes the server: set --api_key)",
                    "127.0.0.1")
    port: int = arg("TCP port", 8000)
    devices: list[str] = arg("one model replica per device: auto (every GPU, else cpu), cpu, or GPU "
                             "indices such as 0 1 2 3", default_factory=lambda: ["auto"])
    max_batch_size: int = arg("most videos per forward pass", 8)
    max_wait_ms: float = arg("longest a queued video waits for others to fill its batch; it waits only while "
                             "more videos are being decoded, so a lone request is scored once its last video is "
                             "ready", 100.0)
    num_workers: int = arg("worker processes decoding videos and frames (0: a thread of the server "
                           "process)", 2)
    video_root: str | None = arg("folder that video paths in requests are resolved under; paths outside "
                                 "it (.., absolute, escaping symlinks) are refused; unset: paths are refused", None)
    api_key: str | None = arg(f"require the key on every endpoint but /health, as 'Authorization: Bearer KEY' or "
                              f"in the URL (http://HOST:PORT/k/KEY/compute, for clients that send no header); "
                              f"when unset, ${API_KEY_ENV} is used if set (prefer it: a flag shows in the process "
                              f"list)", None)
    max_body_mb: float = arg("largest request body, MiB (default: a Flow-Factory batch of 16 videos of 81 PNG "
                             "frames of 832x480, ~76 MiB each as base64, with headroom)", 1536.0)
    max_items: int = arg("most videos per request", 256)
    max_frames: int = arg("most frames per in-memory video", 512)
    max_pixels: int = arg("most pixels (height x width) per in-memory frame, read from its header", 3840 * 2160)
    max_decode_pixels: int = arg("most pixels decoded for one in-memory video (the frames the models sample x "
                                 "height x width; what a decoding worker holds at once), checked from the image "
                                 "headers before decoding", 64 * 1024 * 1024)
    max_request_pixels: int = arg("most pixels decoded for all in-memory videos of one request, checked from "
                                  "the image headers before decoding", 1024 * 1024 * 1024)
    max_prompt_tokens: int = arg("most tokens in a prompt (the served models' tokenizers; a prompt of more than "
                                 "64 characters per allowed token is refused without tokenizing)", 1024)
    max_queue: int = arg("most videos queued or being decoded; beyond it requests get 503", 4096)
    failed_reward: str = arg("reward of a failed video in a request where others succeeded (/compute, "
                             "/get_reward; a request where all failed is an error): floor (every model "
                             "--floor_sigmas standard deviations below its checkpoint's score_mean: "
                             "-floor_sigmas x sum |weight|) or a fixed number", "floor")
    floor_sigmas: float = arg("k of the floor reward: a failed video scores as a video k score_std below each "
                              "checkpoint's score_mean", 3.0)
    frames_fps: float | None = arg("frame rate assumed for in-memory frames sent without one (Flow-Factory sends "
                                   "none); unset: a request without it is refused (422) when a served checkpoint "
                                   "samples in 'fps' mode", None)
    query_pattern: str = arg("regular expression whose matches in an OpenRLHF query are the candidate video paths; "
                             "the last one naming a file under --video_root is scored", DEFAULT_QUERY_PATTERN)
    torch_dtype: str = arg("weights dtype: auto keeps the checkpoint's dtype on GPU and uses float32 on CPU",
                           "auto", choices=TORCH_DTYPES)
    attn_implementation: str = arg("attention kernel of the backbone", "sdpa", choices=ATTN_IMPLEMENTATIONS)
    video_backend: str = arg("video decoder (auto: decord, falling back to pyav)", "auto", choices=BACKENDS)
    decode_timeout: float = arg("seconds allowed to decode one video before it counts as failed; a decoding worker "
                                "holding one video for twice this is killed (and replaced), and videos waiting while "
                                "no worker has been ready for twice this fail (503)", 60.0)

    def __post_init__(self) -> None:
        if not self.model:
            raise ConfigError("expected at least one NAME=DIR", field="model")
        if self.ensemble is not None:
            EnsembleOptions(self.ensemble, self.ensemble_lambda)  # checks both
            if self.weights:
                raise ConfigError("--ensemble combines models of one task without weights; drop --weights",
                                  field="ensemble")
        for name in ("max_batch_size", "max_items", "max_frames", "max_pixels", "max_decode_pixels",
                     "max_request_pixels", "max_prompt_tokens", "max_queue"):
            if getattr(self, name) < 1:
                raise ConfigError("expected a positive integer", field=name)
        if not 0 < self.port < 65536:
            raise ConfigError("expected a port number in 1..65535", field="port")
        if self.num_workers < 0:
            raise ConfigError("expected 0 or more", field="num_workers")
        for name in ("max_wait_ms",):
            if getattr(self, name) < 0:
                raise ConfigError("expected 0 or more milliseconds", field=name)
        for name in ("max_body_mb", "decode_timeout"):
            if not getattr(self, name) > 0:
                raise ConfigError("expected a positive number", field=name)
        failed_reward_value(self.failed_reward)
        if not (self.floor_sigmas >= 0 and math.isfinite(self.floor_sigmas)):
            raise ConfigError("expected a finite number >= 0", field="floor_sigmas")
        if self.frames_fps is not None and (problem := fps_problem(self.frames_fps)):
            raise ConfigError(problem, field="frames_fps")
        try:
            re.compile(self.query_pattern)
        except re.error as exc:
            raise ConfigError(f"not a regular expression ({exc})", field="query_pattern") from None
        if self.api_key is not None and not self.api_key.strip():
            raise ConfigError("must not be empty", field="api_key")

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)


def failed_reward_value(text: str) -> float | None:
    """The fixed reward of `--failed_reward`, or None for ``floor``."""
    if text == "floor":
        return None
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"expected floor or a number, got {text!r}", field="failed_reward") from None
    if not math.isfinite(value):
        raise ConfigError(f"expected a finite number, got {text!r}", field="failed_reward")
    return value


def is_loopback(host: str) -> bool:
    """Whether `host` names only this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
