"""alexnet-deploy: take AlexNet from PyTorch to inference engines and prove how fast and faithful they are."""

__version__ = "0.1.0"
