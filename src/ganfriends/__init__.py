"""ganfriends: train one GAN together — on one machine, or as a whole class through PostgreSQL."""

from __future__ import annotations

__version__ = "0.1.0"

from ganfriends.models import Discriminator, Generator, ModelConfig

__all__ = ["Discriminator", "Generator", "ModelConfig", "__version__"]
