"""Request bodies of the three protocols (pydantic models; unknown or mistyped fields are a 422 naming them).

- ``POST /v1/score`` (:class:`ScoreRequest`): this server's own; one result per item, in order, with
  every model's score or an ``error``.
- ``POST /compute`` (:class:`ComputeRequest`): Flow-Factory's remote reward server protocol: base64
  frames per video, ``{"rewards": [...]}`` back.
- ``POST /get_reward`` (:class:`GetRewardRequest`): OpenRLHF's remote reward model protocol; each
  ``query`` is the decoded prompt + response text, whose last word naming a file under ``--video_root``
  (``--query_pattern``) is the video.

The server parses them with :func:`solireward.serving.body.parse_body`, which hands a long frame of
``videos`` or ``frames`` over as a memoryview of the body instead of a ``str``; the long strings it elides
are validated as short markers, so no string field may limit its length or pattern (tested).
"""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from solireward.serving.config import FPS_RANGE


class ScoreItem(BaseModel):
    """One video: a path under --video_root, or its frames as base64 PNG/JPEG images."""

    model_config = ConfigDict(extra="forbid")

    id: str | int | None = Field(None, description="echoed in the result (any marker of the caller's)")
    video_path: str | None = Field(None, min_length=1, description="a video file, relative to --video_root")
    frames: list[str] | None = Field(None, min_length=1, description="base64 PNG or JPEG images, one per frame")
    prompt: str | None = Field(None, description="the text the video was generated from")
    fps: float | None = Field(None, ge=FPS_RANGE[0], le=FPS_RANGE[1], allow_inf_nan=False,
                              description="frame rate of `frames` (needed by fps-mode checkpoints)")

    @model_validator(mode="after")
    def _one_source(self) -> "ScoreItem":
        if (self.video_path is None) == (self.frames is None):
            raise ValueError("give exactly one of video_path and frames")
        return self


class ScoreRequest(BaseModel):
    """``{"items": [ScoreItem, ...]}``."""

    model_config = ConfigDict(extra="forbid")

    items: list[ScoreItem] = Field(min_length=1)


IGNORED_COMPUTE_FIELDS = ("image", "condition_images", "condition_videos")


class ComputeRequest(BaseModel):
    """Flow-Factory: ``{"prompt(s)": [...], "video(s)": [[base64 image per frame], ...], "extra": {...}}``.

    Both spellings are accepted (Flow-Factory's client sends ``prompt`` and ``video``); ``extra.fps``
    (one number, or one per video) is the frames' rate. The inputs a text-to-video reward model does not
    read (``image``, and the ``condition_images`` / ``condition_videos`` of image-to-video trainers) are
    accepted and ignored (counted in /metrics); any other field is a 422 naming it.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    prompts: list[str | None] = Field(validation_alias=AliasChoices("prompts", "prompt"))
    videos: list[list[str]] = Field(validation_alias=AliasChoices("videos", "video"))
    extra: dict[str, Any] = Field(default_factory=dict)
    image: Any = None
    condition_images: Any = None
    condition_videos: Any = None

    @model_validator(mode="after")
    def _same_length(self) -> "ComputeRequest":
        if len(self.prompts) != len(self.videos):
            raise ValueError(f"{len(self.videos)} videos but {len(self.prompts)} prompts")
        if not self.videos:
            raise ValueError("no videos")
        return self


class GetRewardRequest(BaseModel):
    """OpenRLHF: ``{"query": [text naming a video, ...], "prompts": [...], "labels": ...}`` (labels are ignored)."""

    model_config = ConfigDict(extra="allow")

    query: list[str] = Field(min_length=1)
    prompts: list[str | None] | None = None
    labels: Any = None

    @model_validator(mode="after")
    def _same_length(self) -> "GetRewardRequest":
        if self.prompts is not None and len(self.prompts) != len(self.query):
            raise ValueError(f"{len(self.query)} queries but {len(self.prompts)} prompts")
        return self
