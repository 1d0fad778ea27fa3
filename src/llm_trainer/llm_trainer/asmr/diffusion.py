"""The optional diffusion backend (``diffusers``): background and textures re-rendered, objects held.

ASMR renders new environments with Stable Diffusion; for robot data the scene's geometry and the
objects the plan acts on must stay exactly as recorded, so this backend *inpaints*: the pixels to
hold (``images.hold_mask``: the task objects, and with ``hold: foreground`` the robot too) are
the inpainting mask's keep region, everything else (table top, background) is repainted from a
text prompt, and afterwards the held pixels are copied back from the source frame, so they are
unchanged bit for bit whatever the model did. Depth is not touched (the geometry is the same).

``diffusers`` is an optional extra and imported only here, lazily. Models load from a local folder
only (``local_files_only``: nothing is downloaded); ``model: tiny-random`` builds a tiny randomly
initialised inpainting pipeline in memory, for tests and plumbing (its output is noise, not pictures).

Install beside the project venv (it reuses the venv's torch and transformers)::

    .venv/bin/pip install --no-deps --target .venv-diffusers diffusers
    PYTHONPATH=.venv-diffusers .venv/bin/llm-trainer augment-images ... --method diffusion
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from llm_trainer.asmr.config import DiffusionConfig

TINY = "tiny-random"


def _require_diffusers():
    try:
        import diffusers  # noqa: F401
        import torch  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"the diffusion backend needs diffusers and torch ({exc}); install the optional extra: "
            ".venv/bin/pip install --no-deps --target .venv-diffusers diffusers, then run with "
            "PYTHONPATH=.venv-diffusers"
        ) from None


def _byte_symbols() -> list[str]:
    """Byte-level BPE's printable stand-in for each of the 256 bytes (printable bytes stand for
    themselves, the others for the code points from 256 up)."""
    printable = set(range(ord("!"), ord("~") + 1)) | set(range(0xA1, 0xAD)) | set(range(0xAE, 0x100))
    out, extra = [], 0
    for b in range(256):
        if b in printable:
            out.append(chr(b))
        else:
            out.append(chr(256 + extra))
            extra += 1
    return out


def _tiny_tokenizer():
    """A byte-level CLIP tokenizer with no merges (every byte one token, words end in ``</w>``)."""
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for suffix in ("", "</w>"):
        for c in _byte_symbols():
            vocab.setdefault(c + suffix, len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def tiny_random_pipeline(seed: int = 0):
    """A Stable-Diffusion inpainting pipeline of tiny, randomly initialised parts (UNet with a
    9-channel input: latents, mask, masked-image latents; a 2-level VAE; a 2-layer CLIP text encoder).
    For tests and plumbing only."""
    _require_diffusers()
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionInpaintPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=16,
        in_channels=9,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=16,
    )
    vae = AutoencoderKL(
        block_out_channels=(16, 32),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        norm_num_groups=16,
        sample_size=32,
    )
    tokenizer = _tiny_tokenizer()
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            max_position_embeddings=77,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
            projection_dim=32,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipe = StableDiffusionInpaintPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def load_pipeline(config: DiffusionConfig):
    """The inpainting pipeline of ``config.model``: a local diffusers folder (any pipeline
    ``AutoPipelineForInpainting`` knows: SD 1.x/2.x inpainting, SDXL inpainting, ...), or ``tiny-random``."""
    if not config.model:
        raise ValueError(
            "diffusion.model is empty: set it to a local diffusers inpainting folder (nothing is downloaded), "
            "or tiny-random for a plumbing run"
        )
    if config.model == TINY:
        pipe = tiny_random_pipeline()
    else:
        folder = Path(config.model).expanduser()
        if not (folder / "model_index.json").is_file():
            raise FileNotFoundError(f"{folder}: not a diffusers pipeline folder (no model_index.json)")
        _require_diffusers()
        import torch
        from diffusers import AutoPipelineForInpainting

        dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[config.dtype]
        pipe = AutoPipelineForInpainting.from_pretrained(str(folder), local_files_only=True, torch_dtype=dtype)
        pipe.set_progress_bar_config(disable=True)
    return pipe.to(config.device)


def _working_size(h: int, w: int, resolution: int) -> tuple[int, int]:
    scale = resolution / max(h, w)
    return max(8, int(round(h * scale / 8)) * 8), max(8, int(round(w * scale / 8)) * 8)


def rerender(
    pipe, image: np.ndarray, held: np.ndarray, prompt: str, seed: int, config: DiffusionConfig
) -> tuple[np.ndarray, dict[str, Any]]:
    """Repaint the pixels outside ``held`` from ``prompt``; the held pixels come back unchanged."""
    import cv2
    import torch
    from PIL import Image

    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}")
    if held.shape != image.shape[:2]:
        raise ValueError(f"the hold mask {held.shape} does not match the image {image.shape[:2]}")
    h, w = image.shape[:2]
    wh, ww = _working_size(h, w, config.resolution)
    source = Image.fromarray(cv2.resize(image, (ww, wh), interpolation=cv2.INTER_AREA))
    repaint = cv2.resize((~held).astype(np.uint8) * 255, (ww, wh), interpolation=cv2.INTER_NEAREST)
    generator = torch.Generator(device="cpu").manual_seed(int(seed) % (2**63))
    result = pipe(
        prompt=prompt,
        negative_prompt=config.negative_prompt or None,
        image=source,
        mask_image=Image.fromarray(repaint),
        height=wh,
        width=ww,
        num_inference_steps=config.steps,
        guidance_scale=config.guidance_scale,
        strength=config.strength,
        generator=generator,
        output_type="np",
    ).images[0]
    painted = np.clip(np.round(np.asarray(result, np.float32) * 255.0), 0, 255).astype(np.uint8)
    painted = cv2.resize(painted, (w, h), interpolation=cv2.INTER_CUBIC)
    out = np.where(held[..., None], image, painted)
    params = {
        "model": config.model,
        "prompt": prompt,
        "steps": config.steps,
        "guidance_scale": config.guidance_scale,
        "strength": config.strength,
        "working_size": [wh, ww],
        "held_fraction": round(float(held.mean()), 4),
    }
    return out, params
