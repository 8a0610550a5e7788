"""HyperSim test partition as a manual-download TFDS dataset (zero-shot transfer evaluation)."""
