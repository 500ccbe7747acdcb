"""Model readers, writers and graph passes."""
from .tflite_reader import read_tflite  # noqa: F401
