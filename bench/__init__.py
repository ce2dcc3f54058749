"""PromptShift's machinery, in rooms by job (each imports only the rooms listed before it):

- `core`: data types, the strategy contract and registry, seeds, devices, the results store
- `models`: backbones by name, the embedded checkpoints, their pretraining recipe and measured quality
- `train`: the one training loop and training augmentation
- `eval`: metrics, adversarial attacks and corruptions
- `report`: leaderboards (Markdown, CSV, HTML, robustness) and labelled paper references
- `run`: cells, suites, submissions
- `contract`: the strategy contract as a runnable check, plugin loading
"""
