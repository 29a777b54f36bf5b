"""The Textual workbench. Only this package may import textual; it never imports torch,
transformers or deepspeed (those live in the stage workers)."""
