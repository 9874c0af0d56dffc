"""Background consumers, run inside `pictograph serve` or as `pictograph worker` processes."""
