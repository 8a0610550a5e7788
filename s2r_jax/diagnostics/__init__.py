"""Diagnostics of trained models: what a representation keeps and what it drops."""
