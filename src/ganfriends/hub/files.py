"""The files of one push to the Hugging Face Hub (see ``ganfriends.hub``): safetensors
weights, the sample grid and curves, ``metadata.json`` and the model card."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import torch

from ganfriends import __version__

HUB_FORMAT = "ganfriends-hub/1"  # metadata.json's "format": what hub_download accepts
GENERATOR_FILE = "generator.safetensors"
DISCRIMINATOR_FILE = "discriminator.safetensors"
METADATA_FILE = "metadata.json"


@dataclass
class HubSnapshot:
    """What one push uploads, detached from the training state (CPU tensor copies, bytes)."""

    step: int  # train-local's step, or the class run's version
    generator: dict[str, torch.Tensor]
    discriminator: dict[str, torch.Tensor]
    samples_png: bytes
    sample_name: str  # the grid's own name, e.g. epoch_0003.png
    curves_png: bytes | None
    metadata: dict[str, Any]


def repo_files(snapshot: HubSnapshot, repo_id: str) -> dict[str, bytes]:
    """The files of one push, by path in the repository."""
    from safetensors.torch import save

    files = {
        GENERATOR_FILE: save(snapshot.generator, metadata={"format": "pt"}),
        DISCRIMINATOR_FILE: save(snapshot.discriminator, metadata={"format": "pt"}),
        "samples/latest.png": snapshot.samples_png,
        f"samples/{snapshot.sample_name}": snapshot.samples_png,
    }
    if snapshot.curves_png is not None:
        files["curves.png"] = snapshot.curves_png
    metadata = {
        "format": HUB_FORMAT,
        "ganfriends_version": __version__,
        "pushed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **snapshot.metadata,
        "files": {
            "generator": GENERATOR_FILE,
            "discriminator": DISCRIMINATOR_FILE,
            "samples": "samples/latest.png",
            "curves": "curves.png" if snapshot.curves_png is not None else None,
        },
    }
    files[METADATA_FILE] = json.dumps(metadata, indent=2, sort_keys=True).encode()
    files["README.md"] = model_card(metadata, repo_id).encode()
    return files


def model_card(metadata: dict[str, Any], repo_id: str) -> str:
    """The repository's README.md: YAML front matter the Hub indexes, then a short description."""
    model = metadata.get("model_config", {})
    size = model.get("image_size", "?")
    losses = metadata.get("losses") or {}
    fid = metadata.get("fid")
    facts = [
        f"- {metadata.get('source', 'a ganfriends run')}, step {metadata.get('step')}, "
        f"epoch {metadata.get('epoch')}, {metadata.get('images_seen', 0):,} images seen",
        f"- {model.get('arch', 'dcgan')} generator, {size}x{size}, "
        f"{model.get('channels', '?')} channel(s), latent size {model.get('latent_dim', '?')}",
    ]
    if losses:
        facts.append(
            "- latest losses: " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(losses.items()))
        )
    if fid is not None:
        facts.append(f"- FID {fid:.2f}")
    curves = "\n![loss curves](curves.png)\n" if metadata["files"].get("curves") else ""
    return (
        "---\nlibrary_name: ganfriends\npipeline_tag: unconditional-image-generation\n"
        "tags:\n- gan\n- dcgan\n- ganfriends\n---\n\n"
        f"# ganfriends GAN trained on {metadata.get('dataset', 'images')}\n\n"
        "A generator trained with ganfriends (a GAN trained together by a class, or locally), "
        "pushed while it trains: this repository holds the latest pushed state.\n\n"
        + "\n".join(facts)
        + "\n\n![latest samples](samples/latest.png)\n"
        + curves
        + "\n## Use it\n\nWith ganfriends installed with its `hub` extra:\n\n```\n"
        f"ganfriends generate --hf-repo {repo_id} --num 64 --out samples.png\n```\n\n"
        "Weights are safetensors (`generator.safetensors`, `discriminator.safetensors`); "
        "`metadata.json` holds the model configuration that rebuilds the networks.\n"
    )
