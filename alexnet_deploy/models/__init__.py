"""AlexNet definitions, their declared preprocessing, checkpoints and the layer table."""
