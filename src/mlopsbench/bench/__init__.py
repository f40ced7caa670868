"""The comparison harness: every tool on the same work, each in its own measured process.

``compare`` plans and runs; ``worker`` is the child entry point; ``spawn`` measures a child from
outside; ``results`` is the JSONL record; ``instrumentation``, ``install`` and ``servers`` collect
the evidence that is not a run. Nothing here imports an MLOps tool.
"""
