"""metarl: a meta-reinforcement-learning trainer for PyTorch Lightning and TorchRL (MQL first)."""

__version__ = "0.1.0"
