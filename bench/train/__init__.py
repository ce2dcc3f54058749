"""The one training loop (`harness`) and training-time augmentation."""
