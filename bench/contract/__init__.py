"""The strategy contract as a check (`check-plugin` and the registry-wide tests), plugin loading, and the tiny models it runs on."""
