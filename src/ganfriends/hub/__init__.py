"""The Hugging Face Hub: pushing a run (:mod:`.publisher`, what is pushed in :mod:`.files`) and
reading a pushed model back (:mod:`.download`, for ``generate --hf-repo`` and the demo notebook).
"""

from ganfriends.hub.publisher import (
    HubPublisher,
    HubTarget,
    open_publisher,
    require_hub_client,
    take_snapshot,
    training_metadata,
)

__all__ = [
    "HubPublisher",
    "HubTarget",
    "open_publisher",
    "require_hub_client",
    "take_snapshot",
    "training_metadata",
]
