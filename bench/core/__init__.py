"""The contract every other room stands on: data types, the strategy interface and registry, seeds, devices,
and the results store. Imports nothing else of the project."""
