"""Training on one machine: the local trainer, checkpoints and the run's history."""
