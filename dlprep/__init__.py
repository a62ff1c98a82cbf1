"""dlprep: prepare for deep-learning interviews with spaced repetition and runnable demos."""

__version__ = "0.1.0"
