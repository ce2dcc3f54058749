"""Training methods for the sequence-to-sequence CoCa of the multimodal tasks (bench.multimodal): one module per
method, each registered into `bench.multimodal.methods.SEQ2SEQ_METHODS` on import. They are not `Strategy`s (the
classification harness does not run them); `strategies.load_all` imports this package like any strategy module."""
from __future__ import annotations

from strategies.seq2seq import adapter, bitfit, deep_prompt, finetune, input_prompt, lora  # noqa: F401
