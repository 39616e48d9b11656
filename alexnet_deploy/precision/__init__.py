"""Precision debugging: where a lower-precision artifact loses accuracy, layer by layer."""
