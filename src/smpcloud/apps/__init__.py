"""Use cases built on the primitives and protocols: demonstrations, statistics, learning."""
