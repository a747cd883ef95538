"""The pure math of federated GAN training (FeGAN): data partitions, member weights, sampling.

Devices are numbered 0..N: device 0 is the server device (FeGAN's rank 0 shard), 1..N the clients.
"""

from __future__ import annotations

from ganfriends.federated.partition import (
    SERVER_LIMIT,
    Partition,
    classes_for_device,
    iid_partition,
    non_iid_partition,
)
from ganfriends.federated.sampling import (
    BalancedSampler,
    members_per_round,
    random_members,
    round_members,
    weak_devices,
)
from ganfriends.federated.weighting import (
    DIRAC_THRESHOLD,
    WEIGHTINGS,
    kl_entropies,
    member_weights,
)

__all__ = [
    "DIRAC_THRESHOLD",
    "SERVER_LIMIT",
    "WEIGHTINGS",
    "BalancedSampler",
    "Partition",
    "classes_for_device",
    "iid_partition",
    "kl_entropies",
    "member_weights",
    "members_per_round",
    "non_iid_partition",
    "random_members",
    "round_members",
    "weak_devices",
]
