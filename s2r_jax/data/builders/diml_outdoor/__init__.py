"""DIML/CVL outdoor test set as a manual-download TFDS dataset (zero-shot transfer evaluation)."""
