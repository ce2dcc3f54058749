"""Protocols: pure functions of (labels, domains, seed) that say which records go where. They know nothing of
pixels or file formats, so the same rule serves the embedded glyphs and every on-disk source."""
from scenarios.protocols.rules import (CLASS_ORDERS, adaptation_indices, base_new_classes, class_order,
                                       coop_few_shot, domain_indices, exact_split, indices_of, seeded_few_shot)

__all__ = ["CLASS_ORDERS", "adaptation_indices", "base_new_classes", "class_order", "coop_few_shot",
           "domain_indices", "exact_split", "indices_of", "seeded_few_shot"]
