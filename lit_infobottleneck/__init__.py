"""lit-infobottleneck: information-bottleneck objectives and information-plane metrics for
PyTorch Lightning."""

__version__ = "0.1.0"
