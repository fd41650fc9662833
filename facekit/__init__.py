"""facekit: age, gender and ethnicity from face photos, explained, with their biases measured."""
__version__ = "0.1.0"
