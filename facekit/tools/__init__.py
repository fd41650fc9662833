"""Developer tools: ``facekit bench`` (speed and quality on this machine, beside a peer package)."""
