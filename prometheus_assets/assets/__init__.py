"""Assets: one module per layer. Each asset loads its inputs, calls ``core`` and returns a frame."""
