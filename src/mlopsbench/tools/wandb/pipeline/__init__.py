"""What a Weights & Biases user writes: ``train.py``, a training script that logs one W&B run."""
