"""optsearch: discover optimizer update rules (Neural Optimizer Search) and ship them as PyTorch optimizers."""
