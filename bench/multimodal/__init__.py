"""Sequence-to-sequence multimodal tasks on an encoder-decoder (captioning, VQA, visual entailment, referring
expressions) in OFA's instruction format: tokenizer, CoCa wrapper with teacher forcing, greedy and beam decoding,
candidate scoring, and the train / evaluate loop that scores each task kind with its official metric."""
