"""Embedded multimodal tasks (captioning, VQA, visual entailment, referring expressions) on generated glyph
scenes, and loaders for the real data sets' formats (COCO Karpathy, VQAv2, SNLI-VE, RefCOCO/+/g)."""

# Part of every multimodal cell's data identity (scenarios/identity.py), hence of its id: bump when the scenes, their
# annotations, the task examples or the streams change what they generate, so stored records are not reused.
SCENES_VERSION = 2  # 2: the benchmark's caption references follow their own guideline (annotations.captions)
