"""The model backends: OWLv2 and Molmo2 point, SAM segments (all through transformers); M2T2 grasps where installed.

Every model comes from a LOCAL Hugging Face folder named in ``config/perception.yaml``
(``perception.models.<name>``): nothing is ever downloaded (``local_files_only=True``). The folder is loaded
with the real transformers classes, exactly as the released weights are (``Owlv2Processor`` /
``Owlv2ForObjectDetection``, ``SamProcessor`` / ``SamModel``, ``AutoProcessor`` /
``AutoModelForImageTextToText`` for Molmo2), on ``perception.models.device`` in eval mode, once per process.

Anything missing (a folder, a package, the device) is a ``PerceptionError`` that says what to set or
install. torch and transformers are imported only when a model is loaded, so the classical pipeline
never pays for them.

    owlv2   open-vocabulary detector: one forward pass for all phrases; box centres, best score first
    molmo   Molmo2 VLM: "Point to the {phrase}." per phrase; its point markup is parsed to pixels
    sam     point-prompted masks: the mask with the highest predicted IoU, at the image's size
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from llm_trainer.perception.stages import PerceptionError, Pointer, Segmenter
from llm_trainer.perception.views import CameraView, ObjectQuery

CONFIG_FILE = "config/perception.yaml"


def make_pointer(config) -> Pointer:
    """The model pointer ``config.pointing`` names (``owlv2`` or ``molmo``), loaded from its local folder."""
    models = config.models
    if config.pointing == "owlv2":
        return Owlv2Pointer(models.owlv2, models.device)
    if config.pointing == "molmo":
        return MolmoPointer(models.molmo, models.device)
    raise PerceptionError(f"no model pointer {config.pointing!r}: the model pointers are owlv2 and molmo")


def make_segmenter(config) -> Segmenter:
    """The model segmenter ``config.segmentation`` names (``sam``), loaded from its local folder."""
    if config.segmentation == "sam":
        return SamSegmenter(config.models.sam, config.models.device)
    raise PerceptionError(f"no model segmenter {config.segmentation!r}: the model segmenter is sam")


def require_m2t2() -> None:
    """Raise ``PerceptionError`` unless NVlabs' M2T2 grasp network (the ``m2t2`` package) imports here."""
    try:
        importlib.import_module("m2t2")
    except Exception as e:  # ImportError, or its CUDA extension failing to load
        raise PerceptionError(
            f"grasp: m2t2 needs NVlabs' M2T2 (the `m2t2` package), which does not import here ({e}). M2T2 is "
            "CUDA-only (its pointnet2 ops) and not on PyPI: install it from its repository on the GPU machine. "
            f"`grasp: geometric` in {CONFIG_FILE} works everywhere."
        ) from e


# -- loading --------------------------------------------------------------------------------------------------


def _folder(path: str, key: str, what: str) -> Path:
    """The local model folder ``path`` (from ``perception.models.<key>``), or a PerceptionError saying what to set."""
    if not str(path or "").strip():
        raise PerceptionError(
            f"{what} needs a local Hugging Face folder of its weights: set perception.models.{key} in "
            f"{CONFIG_FILE} (nothing is downloaded)"
        )
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise PerceptionError(
            f"{what}: perception.models.{key} in {CONFIG_FILE} is {str(path)!r}, which is not a folder here "
            "(a local Hugging Face folder is needed; nothing is downloaded)"
        )
    return folder.resolve()


def _require(module: str, why: str) -> None:
    """Import ``module`` or raise a PerceptionError with ``why`` (which says what to install)."""
    try:
        importlib.import_module(module)
    except Exception as e:  # not installed, or installed against another torch (it fails at import)
        raise PerceptionError(f"{why} ({type(e).__name__}: {e})") from e


def _torch_device(device: str):
    import torch

    name = str(device or "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise PerceptionError(
            f"perception.models.device in {CONFIG_FILE} is {name!r}, but torch sees no CUDA device here "
            "(set it to cpu, or run on the GPU machine)"
        )
    try:
        return torch.device(name)
    except RuntimeError as e:
        raise PerceptionError(f"perception.models.device in {CONFIG_FILE}: {e}") from e


@cache
def _load(kind: str, folder: str, device: str) -> tuple[Any, Any]:
    """(processor, model) of ``kind`` from ``folder``, on ``device``, in eval mode; cached per process."""
    _require("transformers", "the model backends need transformers and torch (see requirements.txt)")
    import transformers

    if kind == "owlv2":
        processor_class, model_class = transformers.Owlv2Processor, transformers.Owlv2ForObjectDetection
    elif kind == "sam":
        processor_class, model_class = transformers.SamProcessor, transformers.SamModel
    elif kind == "molmo":
        processor_class, model_class = transformers.AutoProcessor, transformers.AutoModelForImageTextToText
    else:
        raise ValueError(f"unknown model kind {kind!r}")
    torch_device = _torch_device(device)
    try:
        processor = processor_class.from_pretrained(folder, local_files_only=True)
        model = model_class.from_pretrained(folder, local_files_only=True)
    except ImportError as e:
        raise PerceptionError(f"{kind}: loading {folder} needs a package that is missing: {e}") from e
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise PerceptionError(f"{kind}: {folder} is not a loadable {kind} folder: {type(e).__name__}: {e}") from e
    return processor, model.to(torch_device).eval()


def _to_model(inputs, model):
    """Processor outputs on the model's device; floating tensors in the model's dtype."""
    import torch

    out = {}
    for k, v in inputs.items():
        if isinstance(v, torch.Tensor):
            v = v.to(model.device, dtype=model.dtype) if v.is_floating_point() else v.to(model.device)
        out[k] = v
    return out


def _pil(view: CameraView):
    from PIL import Image

    return Image.fromarray(np.ascontiguousarray(view.rgb[..., :3], dtype=np.uint8))


def _phrases(queries: list[ObjectQuery]) -> dict[str, int]:
    """Each distinct phrase, in query order, with how many queries share it (how many candidates to keep)."""
    counts: dict[str, int] = {}
    for q in queries:
        counts[q.phrase()] = counts.get(q.phrase(), 0) + 1
    return counts


def _inside(u: float, v: float, width: int, height: int) -> bool:
    return 0.0 <= u < width and 0.0 <= v < height


# -- OWLv2 ----------------------------------------------------------------------------------------------------


def _area(boxes: np.ndarray) -> np.ndarray:
    return np.clip(boxes[..., 2] - boxes[..., 0], 0, None) * np.clip(boxes[..., 3] - boxes[..., 1], 0, None)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (x0, y0, x1, y1) box with each of ``boxes`` (N, 4)."""
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    union = _area(box) + _area(boxes) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


class Owlv2Pointer(Pointer):
    """OWLv2 open-vocabulary detection: all phrases in one forward pass, the processor's post-processing
    (boxes in the original image's pixels), then per phrase the centres of its boxes, best score first.

    Objects that share a phrase share its candidates: up to as many as there are such objects, from
    boxes that overlap no better-scoring kept box by more than ``max_overlap`` IoU (OWL scores many
    boxes on one object; without this two alike objects would get two boxes of the same one).
    """

    name = "owlv2"

    def __init__(self, folder: str, device: str = "cpu", threshold: float = 0.1, max_overlap: float = 0.3):
        self.folder = _folder(folder, "owlv2", "pointing: owlv2")
        # transformers' OWLv2 image processor is torchvision's where torchvision is installed, else the
        # numpy one, whose resize (as the original's) is scipy's.
        _require(
            "torchvision" if importlib.util.find_spec("torchvision") else "scipy",
            "pointing: owlv2's image processor needs scipy (pip install scipy) or a torchvision built for the "
            "installed torch",
        )
        self.processor, self.model = _load("owlv2", str(self.folder), device)
        self.threshold = threshold  # a box scores at least this (sigmoid of its best class logit)
        self.max_overlap = max_overlap

    def detect(self, view: CameraView, phrases: list[str]) -> dict[str, Any]:
        """The post-processed detections of ``phrases`` in the view: numpy ``boxes`` (N, 4) in pixels,
        ``scores`` (N,) and ``labels`` (N,) indexing ``phrases``; every box the model scored above 0."""
        import torch

        height, width = view.rgb.shape[:2]
        inputs = self.processor(text=[phrases], images=_pil(view), return_tensors="pt", truncation=True)
        with torch.inference_mode():
            outputs = self.model(**_to_model(inputs, self.model))
        result = self.processor.post_process_grounded_object_detection(
            outputs, threshold=0.0, target_sizes=[(height, width)], text_labels=[phrases]
        )[0]
        return {
            "boxes": result["boxes"].float().cpu().numpy().reshape(-1, 4),
            "scores": result["scores"].float().cpu().numpy().reshape(-1),
            "labels": result["labels"].cpu().numpy().reshape(-1),
        }

    def point(self, view: CameraView, queries: list[ObjectQuery]) -> dict[str, list[tuple[float, float]]]:
        counts = _phrases(queries)
        if not counts:
            return {}
        phrases = list(counts)
        found = self.detect(view, phrases)
        height, width = view.rgb.shape[:2]
        by_phrase: dict[str, list[tuple[float, float]]] = {}
        for i, phrase in enumerate(phrases):
            mine = np.flatnonzero((found["labels"] == i) & (found["scores"] >= self.threshold))
            mine = mine[np.argsort(-found["scores"][mine], kind="stable")]
            kept: list[np.ndarray] = []
            pixels: list[tuple[float, float]] = []
            for k in mine:
                if len(pixels) >= counts[phrase]:
                    break
                box = found["boxes"][k]
                u, v = float(box[0] + box[2]) / 2.0, float(box[1] + box[3]) / 2.0
                if not _inside(u, v, width, height):  # in the square padding OWLv2 adds below or right
                    continue
                if kept and float(_iou(box, np.stack(kept)).max()) > self.max_overlap:
                    continue
                kept.append(box)
                pixels.append((u, v))
            by_phrase[phrase] = pixels
        return {q.name: list(by_phrase[q.phrase()]) for q in queries}


# -- SAM ------------------------------------------------------------------------------------------------------


class SamSegmenter(Segmenter):
    """SAM prompted with one foreground point: of its three masks, the one with the highest predicted IoU,
    upscaled to the original image by the processor. The image embedding (the expensive part) is kept
    for the last image, so the several objects of one view cost one encoder pass."""

    name = "sam"

    def __init__(self, folder: str, device: str = "cpu", mask_threshold: float = 0.0):
        self.folder = _folder(folder, "sam", "segmentation: sam")
        self.processor, self.model = _load("sam", str(self.folder), device)
        self.mask_threshold = mask_threshold
        self._last: tuple[np.ndarray, Any] | None = None  # (the image, its embedding)

    def _embedding(self, view: CameraView, pixel_values):
        import torch

        if self._last is None or self._last[0] is not view.rgb:
            with torch.inference_mode():
                embedding = self.model.get_image_embeddings(pixel_values.to(self.model.device, self.model.dtype))
            self._last = (view.rgb, embedding)
        return self._last[1]

    def segment(self, view: CameraView, query: ObjectQuery, pixel: tuple[float, float]) -> np.ndarray | None:
        import torch

        height, width = view.rgb.shape[:2]
        u, v = float(pixel[0]), float(pixel[1])
        if not _inside(u, v, width, height):
            return None
        inputs = self.processor(images=_pil(view), input_points=[[[[u, v]]]], input_labels=[[[1]]], return_tensors="pt")
        embedding = self._embedding(view, inputs["pixel_values"])
        prompt = _to_model({k: inputs[k] for k in ("input_points", "input_labels")}, self.model)
        with torch.inference_mode():
            outputs = self.model(image_embeddings=embedding, multimask_output=True, **prompt)
        masks = self.processor.post_process_masks(
            outputs.pred_masks.float().cpu(),
            inputs["original_sizes"],
            inputs["reshaped_input_sizes"],
            mask_threshold=self.mask_threshold,
        )[0]  # (points, masks, H, W) bool
        best = int(outputs.iou_scores[0, 0].float().argmax())
        mask = masks[0, best].numpy().astype(bool)
        return mask if mask.shape == (height, width) and mask.any() else None


# -- Molmo2 ---------------------------------------------------------------------------------------------------

_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)"
# Molmo2: <points coords="IMAGE ID X Y ID X Y ...">label</points>, X and Y per mille of the width / height.
_COORDS = re.compile(r"""coords\s*=\s*["']([^"']*)["']""", re.IGNORECASE)
# Molmo (v1): <point x="10.5" y="20.1"> / <points x1=".." y1=".." x2=..>, in percent.
_XY = re.compile(rf"""\bx(\d*)\s*=\s*["']?\s*{_NUMBER}\s*["']?\s+y\1\s*=\s*["']?\s*{_NUMBER}""", re.IGNORECASE)


def parse_points(text: str, width: int, height: int) -> list[tuple[float, float]]:
    """The (u, v) pixels in Molmo's point markup, in order of appearance; whatever does not parse (or lies
    outside the image) is skipped, so any text gives a list, maybe empty.

    Molmo2 writes ``<points coords="1 1 073 160 2 173 600">`` (image index, then point index, x, y in
    thousandths of the width and height); Molmo v1 wrote ``<point x="7.3" y="16.0">`` or
    ``<points x1=".." y1=".." ...>`` in percent.
    """
    found: list[tuple[int, float, float]] = []
    for m in _COORDS.finditer(text or ""):
        numbers = [float(n) for n in re.findall(_NUMBER, m.group(1))]
        if len(numbers) == 2:
            triples = [(1.0, numbers[0], numbers[1])]
        else:
            start = 1 if len(numbers) % 3 == 1 else 0  # the image (frame) index, when there is one
            triples = [tuple(numbers[i : i + 3]) for i in range(start, len(numbers) - 2, 3)]
        found += [(m.start(), x / 1000.0, y / 1000.0) for _, x, y in triples if x <= 1000 and y <= 1000]
    for m in _XY.finditer(text or ""):
        x, y = float(m.group(2)), float(m.group(3))
        if x <= 100 and y <= 100:
            found.append((m.start(), x / 100.0, y / 100.0))
    pixels = []
    for _, fx, fy in sorted(found, key=lambda f: f[0]):
        u, v = min(fx * width, width - 1.0), min(fy * height, height - 1.0)
        if _inside(u, v, width, height):
            pixels.append((u, v))
    return pixels


class MolmoPointer(Pointer):
    """Molmo2 asked "Point to the {phrase}." once per distinct phrase (greedy decoding, the processor's chat
    template with the image); the points it writes, in its order, become the phrase's candidates. An
    answer without parsable points ("There are none.") gives none."""

    name = "molmo"
    prompt = "Point to the {phrase}."

    def __init__(self, folder: str, device: str = "cpu", max_new_tokens: int = 96):
        self.folder = _folder(folder, "molmo", "pointing: molmo")
        _require(
            "torchvision",
            "pointing: molmo needs torchvision: Molmo2's image processor is torchvision-only (the full-torch extra "
            "installs it, a torchvision built for the installed torch)",
        )
        self.processor, self.model = _load("molmo", str(self.folder), device)
        self.max_new_tokens = max_new_tokens

    def answer(self, view: CameraView, prompt: str) -> str:
        """Molmo's text answer to ``prompt`` about the view's image."""
        import torch

        messages = [
            {"role": "user", "content": [{"type": "image", "image": _pil(view)}, {"type": "text", "text": prompt}]}
        ]
        inputs = self.processor.apply_chat_template(
            messages, tokenize=True, add_generation_prompt=True, return_dict=True, return_tensors="pt"
        )
        inputs = _to_model(inputs, self.model)
        with torch.inference_mode():
            ids = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        return self.processor.batch_decode(ids[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)[0]

    def point(self, view: CameraView, queries: list[ObjectQuery]) -> dict[str, list[tuple[float, float]]]:
        height, width = view.rgb.shape[:2]
        by_phrase = {
            phrase: parse_points(self.answer(view, self.prompt.format(phrase=phrase)), width, height)[:count]
            for phrase, count in _phrases(queries).items()
        }
        return {q.name: list(by_phrase[q.phrase()]) for q in queries}
