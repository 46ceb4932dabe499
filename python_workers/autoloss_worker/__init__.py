"""autoloss workers: interpret loss graphs with PyTorch, run the rejection protocol and proxy training."""

__version__ = "0.1.0"
