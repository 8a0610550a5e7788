"""Make3D Test134 as a manual-download TFDS dataset (zero-shot transfer evaluation)."""
