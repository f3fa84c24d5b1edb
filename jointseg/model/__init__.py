"""JointSeg model package (PyTorch): blocks, SR branch, segmentation branch, presets.

``jointseg.model.metadata`` is pure onnx/json and does not import torch.
"""
