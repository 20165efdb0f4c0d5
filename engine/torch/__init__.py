"""The torch backend (the ``[gpu]`` extra): VitsModel voices run in padded batches, and Piper voices converted for it.

Importing this package loads nothing; its modules import torch, transformers and onnx, which a CPU install lacks.
"""
