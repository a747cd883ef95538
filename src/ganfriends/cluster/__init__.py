"""Training on a cluster: train-local's torchrun (data-parallel) branch and SLURM job scripts."""

from ganfriends.cluster.ddp import GradientReducer
from ganfriends.cluster.distributed import Cluster

__all__ = ["Cluster", "GradientReducer"]
