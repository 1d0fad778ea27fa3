"""ASMR augmentation settings (``config/asmr.yaml``): language, photometric/sensor and diffusion.

Every value can be changed in the file; the values a job used are written into its summary and
into each augmented sample's provenance.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llm_trainer.config import config_dir, load_section

WRITERS = ("template", "llm")
HOLD = ("objects", "foreground")


def _range(name: str, lo_hi: tuple[float, float], lo: float, hi: float) -> None:
    a, b = lo_hi
    if not (lo <= a <= b <= hi):
        raise ValueError(f"{name} must be [low, high] with {lo} <= low <= high <= {hi}, got {list(lo_hi)}")


@dataclass
class LanguageConfig:
    writer: str = "template"  # template (deterministic, no model) | llm (planner.yaml's backend)
    per_episode: int = 4  # paraphrases kept per source sample
    dialogues_per_episode: int = 1  # dialogues kept per source sample
    candidates_factor: float = 2.0  # candidates asked for per kept one (the filter drops some)
    temperature: float = 0.8  # LLM writer
    max_new_tokens: int = 384  # LLM writer
    include_originals: bool = True  # the output holds the source samples too (ready to train on)

    def validate(self) -> None:
        if self.writer not in WRITERS:
            raise ValueError(f"language.writer must be one of {', '.join(WRITERS)}, got {self.writer!r}")
        if not 0 <= self.per_episode <= 100 or not 0 <= self.dialogues_per_episode <= 100:
            raise ValueError("language.per_episode and dialogues_per_episode must be within [0, 100]")
        if not 1.0 <= self.candidates_factor <= 10.0:
            raise ValueError("language.candidates_factor must be within [1, 10]")
        if not 0.0 <= self.temperature <= 2.0:
            raise ValueError("language.temperature must be within [0, 2]")
        if not 32 <= self.max_new_tokens <= 4096:
            raise ValueError("language.max_new_tokens must be within [32, 4096]")


@dataclass
class PhotometricConfig:
    """Colour jitter, blur, noise and JPEG re-compression (OpenCV), each drawn per sample."""

    brightness: tuple[float, float] = (-25.0, 25.0)  # added to V [0-255]
    contrast: tuple[float, float] = (0.8, 1.2)  # gain about the image mean
    saturation: tuple[float, float] = (0.8, 1.2)  # gain on S
    hue: tuple[float, float] = (-4.0, 4.0)  # [deg] small: a red block must stay red (checked)
    blur_probability: float = 0.5
    blur_sigma: tuple[float, float] = (0.3, 1.5)  # [px] Gaussian
    noise_std: tuple[float, float] = (0.0, 6.0)  # [0-255] Gaussian sensor noise
    jpeg_probability: float = 0.3
    jpeg_quality: tuple[float, float] = (40.0, 90.0)

    def validate(self) -> None:
        _range("photometric.brightness", self.brightness, -128, 128)
        _range("photometric.contrast", self.contrast, 0.1, 3.0)
        _range("photometric.saturation", self.saturation, 0.0, 3.0)
        _range("photometric.hue", self.hue, -90, 90)
        _range("photometric.blur_sigma", self.blur_sigma, 0.0, 10.0)
        _range("photometric.noise_std", self.noise_std, 0.0, 64.0)
        _range("photometric.jpeg_quality", self.jpeg_quality, 1, 100)
        for name in ("blur_probability", "jpeg_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"photometric.{name} must be within [0, 1]")


@dataclass
class DepthConfig:
    """RealSense-like depth: noise growing with the square of the range, holes at depth steps
    (stereo occlusion), random dropout blobs, and the sensor's range limits."""

    noise_at_1m_mm: tuple[float, float] = (1.0, 3.0)  # [mm] axial sigma at 1 m; sigma(z) = s * z^2
    edge_threshold_mm: float = 20.0  # a step this large between neighbours is an edge
    edge_hole_width: tuple[int, int] = (1, 3)  # [px] invalidated beside each edge
    edge_hole_probability: float = 0.7  # share of edge pixels that become holes
    dropout_fraction: tuple[float, float] = (0.0, 0.03)  # share of the image in random blobs
    dropout_blob_px: int = 8  # typical blob size
    min_range_m: float = 0.105  # D435i minimum z
    max_range_m: float = 3.0

    def validate(self) -> None:
        _range("depth.noise_at_1m_mm", self.noise_at_1m_mm, 0.0, 50.0)
        _range("depth.dropout_fraction", self.dropout_fraction, 0.0, 0.5)
        lo, hi = self.edge_hole_width
        if not 0 <= lo <= hi <= 20:
            raise ValueError("depth.edge_hole_width must be [low, high] pixels within [0, 20]")
        if not 0.0 <= self.edge_hole_probability <= 1.0:
            raise ValueError("depth.edge_hole_probability must be within [0, 1]")
        if self.edge_threshold_mm <= 0 or self.dropout_blob_px < 1:
            raise ValueError("depth.edge_threshold_mm and dropout_blob_px must be positive")
        if not 0.0 <= self.min_range_m < self.max_range_m:
            raise ValueError("depth.min_range_m must be below max_range_m")


@dataclass
class DiffusionConfig:
    """The optional diffusers backend: background and texture re-rendered, held pixels kept exactly."""

    model: str = ""  # a local diffusers inpainting folder (nothing is downloaded) | tiny-random (plumbing)
    prompts: list[str] = field(
        default_factory=lambda: [
            "a wooden table top in a robotics lab, photo",
            "a white laminate table in a bright office, photo",
            "a grey concrete workbench in a workshop, photo",
            "a kitchen counter with a marble texture, photo",
            "a dark green table mat in a cluttered room, photo",
        ]
    )
    negative_prompt: str = "blurry, distorted, text, watermark"
    steps: int = 20
    guidance_scale: float = 6.0
    strength: float = 0.9  # how far the repainted area may move from the original
    resolution: int = 512  # the model's working size (the frame is scaled, then scaled back)
    device: str = "cpu"  # cpu | cuda | cuda:N
    dtype: str = "float32"  # float32 | float16 | bfloat16
    hold: str = "foreground"  # objects (task objects' masks) | foreground (objects + robot: above the table)
    mask_margin_m: float = 0.005  # object boxes grown by this much for the mask

    def validate(self) -> None:
        if not 1 <= self.steps <= 200:
            raise ValueError("diffusion.steps must be within [1, 200]")
        if not 0.0 < self.strength <= 1.0:
            raise ValueError("diffusion.strength must be within (0, 1]")
        if self.resolution < 32 or self.resolution % 8:
            raise ValueError("diffusion.resolution must be a multiple of 8, at least 32")
        if self.dtype not in ("float32", "float16", "bfloat16"):
            raise ValueError("diffusion.dtype must be float32, float16 or bfloat16")
        if self.hold not in HOLD:
            raise ValueError(f"diffusion.hold must be one of {', '.join(HOLD)}")
        if not self.prompts:
            raise ValueError("diffusion.prompts must not be empty")


@dataclass
class ImagesConfig:
    methods: list[str] = field(default_factory=lambda: ["photometric", "depth"])  # + diffusion (optional)
    per_frame: int = 2  # augmented copies per source frame
    every: int = 10  # one source frame every this many grid samples
    rate_hz: float = 10.0  # the episode grid (as the exporters use it)
    colour_check: bool = True  # refuse a sample whose objects' named colours no longer read as named

    def validate(self) -> None:
        unknown = sorted(set(self.methods) - {"photometric", "depth", "diffusion"})
        if unknown or not self.methods:
            raise ValueError(
                f"images.methods: unknown {', '.join(unknown) or '(empty)'} (photometric, depth, diffusion)"
            )
        if not 1 <= self.per_frame <= 100 or self.every < 1 or self.rate_hz <= 0:
            raise ValueError("images.per_frame must be within [1, 100], every >= 1, rate_hz > 0")


@dataclass
class AsmrConfig:
    seed: int = 0
    language: LanguageConfig = field(default_factory=LanguageConfig)
    images: ImagesConfig = field(default_factory=ImagesConfig)
    photometric: PhotometricConfig = field(default_factory=PhotometricConfig)
    depth: DepthConfig = field(default_factory=DepthConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)


def load_asmr_config(path=None) -> AsmrConfig:
    return load_section(AsmrConfig, path or config_dir() / "asmr.yaml", "asmr")
