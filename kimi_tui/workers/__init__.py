"""Stage workers: subprocesses that do the heavy work of each engine (only they import torch)."""
