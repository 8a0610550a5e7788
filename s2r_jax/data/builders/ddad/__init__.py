"""DDAD validation frames (ZoeDepth's preprocessed layout) as a manual-download TFDS dataset (zero-shot transfer evaluation)."""
