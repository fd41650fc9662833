"""Networks: backbones and their weights (``backbones``), backbone + heads and the one
checkpoint loader (``model``), and the ONNX / int8 graphs inference runs (``export``)."""
