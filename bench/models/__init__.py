"""Backbones by name (timm ViTs, open_clip CLIP and CoCa), the embedded checkpoints and the recipe that pretrains them."""
