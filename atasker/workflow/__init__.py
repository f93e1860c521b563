"""Workflows: signatures and the canvas (chain, group, chord), map and
chunks, waiting for many records, eager apply."""
