"""Training the nano generator (``scripts/train_nano.py``; docs/engines.md, "Training").

Modules: ``data`` (the footage's manifest and frame packs), ``clip_bank`` (training clips on the
device and the drawing of a batch), ``stream_sim`` (the stream model as one differentiable pass),
``train_config`` (what a run does), ``schedule`` (the learning rate: warm-up, one cosine across
runs), ``train`` (the networks, the objective and the training loop), ``checkpoints`` (the
checkpoint folder, resumed also by a grown architecture), ``shipped_weights`` (the float16 files
exported and read back), ``heldout`` (held-out PSNRs and the sample sheet).
"""
