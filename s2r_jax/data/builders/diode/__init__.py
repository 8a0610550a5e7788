"""DIODE validation set (indoor and outdoor) as a manual-download TFDS dataset (zero-shot transfer evaluation)."""
