"""Training: a generic Accelerate trainer (`train`) driven by phase objects, with exact resume.

    from unifashion.training import TrainConfig, train
    summary = train(model, phase, dataset, TrainConfig(steps=1000, batch_size=32), "runs/phase1")
    summary = train(model, phase, dataset, same_config, "runs/phase1", resume=True)  # after an interruption
"""
from unifashion.training.checkpoint import CheckpointError, latest_checkpoint, list_checkpoints, verify
from unifashion.training.trainer import Phase, PhaseModule, TrainConfig, TrainingError, lr_factor, train

__all__ = ["CheckpointError", "Phase", "PhaseModule", "TrainConfig", "TrainingError", "latest_checkpoint",
           "list_checkpoints", "lr_factor", "train", "verify"]
