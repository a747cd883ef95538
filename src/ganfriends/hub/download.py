"""Reading back a repository that ``ganfriends.hub`` pushed: ``generate --hf-repo`` and the demo
notebook (``HF_REPO_ID``).

Only JSON and safetensors are read, and ``metadata.json`` is checked (types, sizes, the model
configuration) before anything is built from it: a repository is someone else's data.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ganfriends.config import REPO_ID, HuggingFaceConfig
from ganfriends.errors import GanError
from ganfriends.hub import HubTarget, require_hub_client
from ganfriends.hub.files import GENERATOR_FILE, HUB_FORMAT, METADATA_FILE
from ganfriends.models import Generator, ModelConfig, make_generator

MAX_METADATA_BYTES = 1 << 20  # 1 MiB: a few numbers and short lists
MAX_WEIGHTS_BYTES = 2 << 30  # 2 GiB: 150x the default 64x64 generator (14.3 MB)
MAX_PNG_BYTES = 32 << 20
MAX_GRIDS = 50  # progression grids the notebook downloads at most
# The safetensors header on top of the tensors: a JSON index, measured 1-2.6 KB for our
# generators (16x16 to 128x128); 64 KiB holds the index of hundreds of tensors.
SAFETENSORS_HEADER_BYTES = 64 << 10


class HubRepoError(GanError):
    """The Hugging Face repository cannot be read as a ganfriends model."""


@dataclass
class HubModel:
    """A generator rebuilt from a pushed repository, with what its metadata says."""

    repo_id: str
    generator: Generator  # in eval mode, on CPU
    model_config: ModelConfig
    step: int
    metadata: dict[str, Any]
    grids: list[tuple[int, Image.Image]] = field(default_factory=list)  # (index, grid)


def target_for(repo_id: str, config: HuggingFaceConfig | None = None) -> HubTarget:
    """``repo_id`` with the token and endpoint of ``config`` or the environment."""
    if not REPO_ID.fullmatch(repo_id):
        raise HubRepoError(f"a Hugging Face repository is owner/name, got {repo_id!r}")
    base = config or HuggingFaceConfig()
    return HubTarget.from_config(
        HuggingFaceConfig(repo_id=repo_id, token=base.token, endpoint=base.endpoint)
    )


def fetch_model(target: HubTarget, *, with_grids: bool = False) -> HubModel:
    """Download ``metadata.json`` and the generator's safetensors, check them, build G."""
    require_hub_client()
    metadata = check_metadata(json_file(_download(target, METADATA_FILE, MAX_METADATA_BYTES)))
    model_config = ModelConfig.from_dict(metadata["model_config"])
    # The weights must be the size of the model the metadata describes, checked before either is
    # downloaded or built: a few-KB repository cannot make us allocate its metadata's 10 GB model.
    needed = generator_bytes(model_config)
    if needed > MAX_WEIGHTS_BYTES:
        raise HubRepoError(
            f"{target.describe()}: {METADATA_FILE}'s model needs {needed:,} bytes of weights, "
            f"more than {MAX_WEIGHTS_BYTES:,}"
        )
    # At least half: float32 tensors, or bfloat16/float16 ones (load_state_dict converts).
    weights = _download(
        target, GENERATOR_FILE, needed + SAFETENSORS_HEADER_BYTES, at_least=needed // 2
    )
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(weights)
    except (SafetensorError, OSError) as exc:
        raise HubRepoError(
            f"{target.repo_id}: {GENERATOR_FILE} is not safetensors ({exc})"
        ) from exc
    generator = make_generator(model_config)
    try:
        generator.load_state_dict(state)
    except RuntimeError as exc:
        raise HubRepoError(
            f"{target.repo_id}: {GENERATOR_FILE} does not fit its metadata's model "
            f"({str(exc).strip().splitlines()[0]})"
        ) from exc
    grids: list[tuple[int, Image.Image]] = []
    if with_grids:
        for i, name in enumerate(metadata["sample_grids"][-MAX_GRIDS:]):
            image = _optional_png(target, name)
            if image is not None:
                grids.append((i, image))
    return HubModel(
        repo_id=target.repo_id,
        generator=generator.eval(),
        model_config=model_config,
        step=metadata["step"],
        metadata=metadata,
        grids=grids,
    )


def json_file(path: Path) -> Any:
    """Parse a downloaded JSON file."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HubRepoError(f"{METADATA_FILE} is not valid JSON ({exc})") from exc


def check_metadata(data: Any) -> dict[str, Any]:
    """``metadata.json`` as a dict whose fields have the types readers rely on."""

    def bad(why: str) -> HubRepoError:
        return HubRepoError(f"{METADATA_FILE} is not a ganfriends push: {why}")

    if not isinstance(data, dict):
        raise bad("not a JSON object")
    if data.get("format") != HUB_FORMAT:
        raise bad(f"format {data.get('format')!r}, expected {HUB_FORMAT!r}")
    step = data.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise bad(f"step must be a whole number >= 0, got {step!r}")
    model = data.get("model_config")
    if not isinstance(model, dict) or not all(
        isinstance(v, (int, str)) and not isinstance(v, bool) for v in model.values()
    ):
        raise bad("model_config must be an object of numbers and strings")
    try:
        ModelConfig.from_dict(model)
    except (TypeError, ValueError) as exc:
        raise bad(f"model_config: {exc}") from exc
    grids = data.get("sample_grids", [])
    if not isinstance(grids, list) or not all(
        isinstance(g, str) and g.startswith("samples/") and ".." not in g for g in grids
    ):
        raise bad("sample_grids must be a list of samples/ paths")
    history = data.get("loss_history", [])
    if not isinstance(history, list) or not all(
        isinstance(p, dict)
        and all(isinstance(p.get(k), (int, float)) for k in ("step", "d_loss", "g_loss"))
        for p in history
    ):
        raise bad("loss_history must be a list of {step, d_loss, g_loss}")
    return {**data, "sample_grids": grids, "loss_history": history}


def generator_bytes(config: ModelConfig) -> int:
    """The bytes of ``config``'s generator state (parameters and buffers), counted on PyTorch's
    meta device: nothing is allocated, whatever the configuration asks for."""
    with torch.device("meta"):
        generator = make_generator(config)
    return sum(t.numel() * t.element_size() for t in generator.state_dict().values())


def _download(target: HubTarget, filename: str, limit: int, *, at_least: int = 0) -> Path:
    """``filename`` of ``target``'s repository, in the client's cache. Its size (the Hub's
    answer to a HEAD request, the one ``hf_hub_download`` itself makes) must be in
    ``at_least..limit`` before a byte of it is downloaded."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError

    try:
        url = hf_hub_url(target.repo_id, filename, endpoint=target.endpoint)
        size = get_hf_file_metadata(url, token=target.token, endpoint=target.endpoint).size
        if size is None or not at_least <= size <= limit:
            raise HubRepoError(
                f"{target.describe()}: {filename} is "
                + ("of unknown size" if size is None else f"{size:,} bytes")
                + f", not {at_least:,} to {limit:,}: not downloaded"
            )
        path = Path(
            hf_hub_download(target.repo_id, filename, endpoint=target.endpoint, token=target.token)
        )
    except RepositoryNotFoundError as exc:
        raise HubRepoError(
            f"Hugging Face repository {target.describe()} not found (or it is private: set "
            "HF_TOKEN)"
        ) from exc
    except EntryNotFoundError as exc:
        raise HubRepoError(
            f"{target.describe()} has no {filename}: is it a ganfriends push?"
        ) from exc
    except HubRepoError:
        raise
    except Exception as exc:  # network, HTTP, cache: one line, never the token
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if target.token:
            text = text.replace(target.token, "***")
        raise HubRepoError(f"cannot download {filename} from {target.describe()}: {text}") from exc
    if not at_least <= os.path.getsize(path) <= limit:  # a server whose HEAD said otherwise
        raise HubRepoError(
            f"{target.describe()}: {filename} is {os.path.getsize(path):,} bytes, not "
            f"{at_least:,} to {limit:,}"
        )
    return path


def _optional_png(target: HubTarget, name: str) -> Image.Image | None:
    """A sample grid, or None when the push that named it did not land."""
    try:
        path = _download(target, name, MAX_PNG_BYTES)
        return Image.open(io.BytesIO(path.read_bytes())).convert("RGB")
    except (HubRepoError, OSError):
        return None
