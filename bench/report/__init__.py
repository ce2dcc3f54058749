"""Leaderboards from stored results: Markdown/CSV tables, the HTML page, robustness tables, labelled paper references."""
