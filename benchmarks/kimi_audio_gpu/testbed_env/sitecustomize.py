"""The test bed's interpreter start-up hooks (this folder is on PYTHONPATH of the official code's interpreter only).

See testbed_controls.py: an 80 GiB cap on the CUDA allocator, torch's peak memory, and skipping the
random init of models that are overwritten whole, each only when its environment variable is set.
Never part of kimi-tui's package or of a user's checkout.
"""

try:
    import testbed_controls

    testbed_controls.install()
except Exception as exc:  # a broken hook must never stop the official code from starting
    import sys

    print(f"[testbed] sitecustomize: {type(exc).__name__}: {exc}", file=sys.stderr)
