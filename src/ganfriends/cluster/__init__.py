"""Training on a cluster: train-local's torchrun (data-parallel) branch and SLURM job scripts."""

from ganfriends.cluster.distributed import Cluster, GradientReducer

__all__ = ["Cluster", "GradientReducer"]
