"""Making checkpoints: the training loop (``loop``, single process or ``torchrun``), the feature
cache that makes CPU training feasible (``features``) and image augmentation (``augment``)."""
