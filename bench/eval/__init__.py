"""Scoring trained models: metrics over accuracy matrices, adversarial attacks, corruptions."""
