"""Representation of a stream's prompts: quantised low-rank keyframes, chunks, ladders."""
