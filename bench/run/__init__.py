"""Running the benchmark: cells, suites, and merging submitted results."""
