"""Per-family descriptions of the supported vision-language backbones.

Everything that differs between Qwen2-VL, Qwen2.5-VL, InternVL3 and InternVL3.5 is data in one
:class:`Family` record: which `transformers` classes load it, how its folder's ``config.json``
identifies it, where its decoder layers and vision tower sit, how positions are computed, and how
to build a tiny random model of it (special tokens, chat template, vision settings). The loading,
prompt-building, collating and scoring code is the same for every family.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from solireward.errors import InputError

# Chat templates of the tiny models: the ChatML layout of both families, with the family's video
# placeholder. Real checkpoints ship their own templates; these are only for `tiny-model`.
_CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'video' %}@VIDEO@"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclasses.dataclass(frozen=True)
class TinySizes:
    """Sizes of a tiny random model (see `solireward tiny-model`)."""

    hidden_size: int = 64
    num_layers: int = 4
    vision_layers: int = 2
    image_size: int = 56
    vocab_size: int = 400


@dataclasses.dataclass(frozen=True)
class Family:
    """What distinguishes one backbone family; the rest of the code is shared."""

    name: str
    """The `--model_type` name."""
    model_class: str
    """`transformers` class of the full vision-language model."""
    config_model_type: str
    """`model_type` in the folder's config.json."""
    text_model_type: str | None
    """`text_config.model_type` that must match (InternVL3: qwen2, InternVL3.5: qwen3), or None."""
    language_model_path: str
    """Dotted attribute path of the decoder stack (its `.layers` are the decoder layers)."""
    vision_module_paths: tuple[str, ...]
    """Dotted paths of the modules frozen by `freeze_vision_tower` (encoder and projector)."""
    rope_from_mask: bool
    """True when the model derives positions from `arange` and we must pass `position_ids` computed
    from the attention mask (1-D RoPE); False when the model derives them itself (Qwen M-RoPE)."""
    special_tokens: tuple[str, ...]
    """Special tokens of the tiny tokenizer (the first is the padding token)."""
    named_tokens: dict[str, str]
    """Named tokenizer attributes the family processor reads (e.g. `video_token`)."""
    video_placeholder: str
    """What the tiny chat template writes for a video; the processor expands it."""
    build_tiny_config: Callable[[Any, TinySizes], Any]
    """(tokenizer, sizes) -> model config of a tiny random model."""
    build_tiny_processor: Callable[[Any, str, TinySizes], Any]
    """(tokenizer, chat_template, sizes) -> processor of a tiny random model."""

    @property
    def chat_template(self) -> str:
        """The tiny models' chat template."""
        return _CHATML.replace("@VIDEO@", self.video_placeholder)

    def model_cls(self) -> type:
        """The `transformers` model class (imported on first use)."""
        import transformers

        return getattr(transformers, self.model_class)


def _text_dims(sizes: TinySizes) -> dict[str, Any]:
    heads = 4 if sizes.hidden_size % 4 == 0 else 1
    return dict(hidden_size=sizes.hidden_size, intermediate_size=2 * sizes.hidden_size,
                num_hidden_layers=sizes.num_layers, num_attention_heads=heads,
                num_key_value_heads=max(1, heads // 2), max_position_embeddings=4096)


def _token_ids(tokenizer: Any) -> dict[str, Any]:
    return dict(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None)


def _qwen_tiny_config(version: str) -> Callable[[Any, TinySizes], Any]:
    def build(tokenizer: Any, sizes: TinySizes) -> Any:
        import transformers

        head_dim = sizes.hidden_size // _text_dims(sizes)["num_attention_heads"]
        # M-RoPE splits head_dim/2 rotary frequencies over (time, height, width).
        half = head_dim // 2
        section = [half - 2 * (half // 3), half // 3, half // 3]
        text = dict(vocab_size=len(tokenizer), **_text_dims(sizes), **_token_ids(tokenizer),
                    rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": section})
        vision_width = max(16, sizes.hidden_size // 2)
        vision = dict(depth=sizes.vision_layers, hidden_size=vision_width if version == "2.5" else sizes.hidden_size,
                      num_heads=2, patch_size=14, spatial_merge_size=2, temporal_patch_size=2)
        if version == "2.5":
            vision.update(intermediate_size=2 * vision_width, out_hidden_size=sizes.hidden_size,
                          fullatt_block_indexes=[sizes.vision_layers - 1], window_size=112)
            cls = transformers.Qwen2_5_VLConfig
        else:
            vision.update(embed_dim=vision_width, mlp_ratio=2)
            cls = transformers.Qwen2VLConfig
        ids = {name: tokenizer.convert_tokens_to_ids(tok) for name, tok in (
            ("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
            ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>"))}
        return cls(text_config=text, vision_config=vision, tie_word_embeddings=True, **ids)

    return build


def _qwen_tiny_processor(version: str) -> Callable[[Any, str, TinySizes], Any]:
    def build(tokenizer: Any, chat_template: str, sizes: TinySizes) -> Any:
        import transformers

        pixels = dict(min_pixels=28 * 28, max_pixels=sizes.image_size * sizes.image_size,
                      patch_size=14, merge_size=2, temporal_patch_size=2)
        image = transformers.Qwen2VLImageProcessor(**pixels)
        video = transformers.Qwen2VLVideoProcessor(**pixels, do_sample_frames=False, cap_pixels_per_frame=True)
        cls = transformers.Qwen2_5_VLProcessor if version == "2.5" else transformers.Qwen2VLProcessor
        return cls(image_processor=image, tokenizer=tokenizer, video_processor=video, chat_template=chat_template)

    return build


def _internvl_tokens_per_tile(sizes: TinySizes) -> int:
    return (sizes.image_size // 14) ** 2 // 4  # 14-pixel patches, pixel shuffle by 0.5


def _internvl_tiny_config(text_model_type: str) -> Callable[[Any, TinySizes], Any]:
    def build(tokenizer: Any, sizes: TinySizes) -> Any:
        import transformers

        dims = _text_dims(sizes)
        text = dict(model_type=text_model_type, vocab_size=len(tokenizer), **dims, **_token_ids(tokenizer),
                    head_dim=sizes.hidden_size // dims["num_attention_heads"], tie_word_embeddings=True)
        width = max(16, sizes.hidden_size // 2)
        vision = dict(hidden_size=width, num_hidden_layers=sizes.vision_layers, num_attention_heads=2,
                      intermediate_size=2 * width, image_size=sizes.image_size, patch_size=14)
        return transformers.InternVLConfig(
            text_config=text, vision_config=vision, downsample_ratio=0.5,
            image_token_id=tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>"),
            image_seq_length=_internvl_tokens_per_tile(sizes))

    return build


def _internvl_tiny_processor(tokenizer: Any, chat_template: str, sizes: TinySizes) -> Any:
    import transformers

    size = {"height": sizes.image_size, "width": sizes.image_size}
    image = transformers.GotOcr2ImageProcessor(size=size, crop_to_patches=False)
    video = transformers.InternVLVideoProcessor(size=size)
    return transformers.InternVLProcessor(image_processor=image, tokenizer=tokenizer, video_processor=video,
                                          image_seq_length=_internvl_tokens_per_tile(sizes),
                                          chat_template=chat_template)


_QWEN_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                "<|image_pad|>", "<|video_pad|>")
_QWEN_NAMED = {"image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
               "vision_start_token": "<|vision_start|>", "vision_end_token": "<|vision_end|>"}
_INTERNVL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>",
                    "<video>")
_INTERNVL_NAMED = {"start_image_token": "<img>", "end_image_token": "</img>",
                   "context_image_token": "<IMG_CONTEXT>", "video_token": "<video>"}


def _qwen(name: str, model_class: str, config_model_type: str, version: str) -> Family:
    return Family(
        name=name, model_class=model_class, config_model_type=config_model_type, text_model_type=None,
        language_model_path="model.language_model", vision_module_paths=("model.visual",),
        rope_from_mask=False, special_tokens=_QWEN_TOKENS, named_tokens=_QWEN_NAMED,
        video_placeholder="<|vision_start|><|video_pad|><|vision_end|>",
        build_tiny_config=_qwen_tiny_config(version), build_tiny_processor=_qwen_tiny_processor(version))


def _internvl(name: str, text_model_type: str) -> Family:
    return Family(
        name=name, model_class="InternVLForConditionalGeneration", config_model_type="internvl",
        text_model_type=text_model_type, language_model_path="model.language_model",
        vision_module_paths=("model.vision_tower", "model.multi_modal_projector"),
        rope_from_mask=True, special_tokens=_INTERNVL_TOKENS, named_tokens=_INTERNVL_NAMED,
        video_placeholder="<video>\n",
        build_tiny_config=_internvl_tiny_config(text_model_type), build_tiny_processor=_internvl_tiny_processor)


FAMILIES: dict[str, Family] = {f.name: f for f in (
    _qwen("Qwen2-VL", "Qwen2VLForConditionalGeneration", "qwen2_vl", "2"),
    _qwen("Qwen2.5-VL", "Qwen2_5_VLForConditionalGeneration", "qwen2_5_vl", "2.5"),
    _internvl("InternVL3", "qwen2"),
    _internvl("InternVL3-5", "qwen3"),
)}


def get_family(model_type: str) -> Family:
    """The family registered as `model_type`; an unknown name is an InputError listing the known ones."""
    try:
        return FAMILIES[model_type]
    except KeyError:
        raise InputError(f"unknown model_type '{model_type}'; expected one of {sorted(FAMILIES)}",
                         field="model_type") from None


def detect_family(config: dict[str, Any], source: str) -> Family:
    """The family of a checkpoint from its config.json contents (`source` names the file in errors)."""
    model_type = config.get("model_type")
    text_type = (config.get("text_config") or {}).get("model_type")
    for family in FAMILIES.values():
        if family.config_model_type == model_type and family.text_model_type in (None, text_type):
            return family
    raise InputError(f"unsupported model_type '{model_type}' (text model '{text_type}'); supported: "
                     + ", ".join(f"{f.config_model_type}" + (f"/{f.text_model_type}" if f.text_model_type else "")
                                 + f" ({f.name})" for f in FAMILIES.values()), file=source, field="model_type")
