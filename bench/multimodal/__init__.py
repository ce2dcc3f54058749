"""Sequence-to-sequence multimodal tasks on an encoder-decoder (captioning, VQA, visual entailment, referring
expressions) in OFA's instruction format: tokenizer, CoCa wrapper with teacher forcing, greedy and beam decoding,
candidate scoring, and the train / evaluate loop that scores each task kind with its official metric.

The engine the harness calls: `methods` (the method protocol, `SEQ2SEQ_METHODS`, `build_method`; implementations in
strategies/seq2seq/), `loop` (`train`, `evaluate`, `TrainSettings`, `PRIMARY_METRIC`), `scene_model`
(`load_scene_coca`, the embedded pretrained model; its recipe in `pretrain`) and `robustness`
(`generation_robustness`: attacks and corruptions scored with each kind's metric)."""
