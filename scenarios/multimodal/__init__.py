"""Embedded multimodal tasks (captioning, VQA, visual entailment, referring expressions) on generated glyph
scenes, and loaders for the real data sets' formats (COCO Karpathy, VQAv2, SNLI-VE, RefCOCO/+/g)."""
